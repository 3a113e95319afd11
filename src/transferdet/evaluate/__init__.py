"""Detection metrics: COCO-style AP (faster-coco-eval, pycocotools cross-check) and VOC AP50."""
