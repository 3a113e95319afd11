"""transferdet: choose, fine-tune, evaluate and benchmark pretrained backbones for object detection."""

__version__ = "0.1.0"
