"""Instance masks: COCO segmentations (polygons or RLE) to binary arrays, via pycocotools."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from transferdet.data.dataset import ImageRecord, Segmentation


def decode_segmentation(segmentation: Segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygon list, uncompressed or compressed RLE) as an (H, W) bool array."""
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects([p for p in segmentation if len(p) >= 6], height, width)
        if not rles:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        rle = {"size": segmentation["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def record_masks(record: ImageRecord) -> np.ndarray | None:
    """All masks of a record as an (N, H, W) bool array; a box without a mask gets its box filled."""
    if record.masks is None:
        return None
    out = np.zeros((record.num_boxes, record.height, record.width), dtype=bool)
    for i, (segmentation, box) in enumerate(zip(record.masks, record.boxes, strict=True)):
        if segmentation is not None:
            out[i] = decode_segmentation(segmentation, record.height, record.width)
        else:
            x1, y1, x2, y2 = np.round(box).astype(int)
            out[i, max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    return out
