"""Detection data: formats, the in-memory dataset, validation, synthetic data, sub-sampling."""

from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.loader import load_dataset

__all__ = ["DetectionDataset", "ImageRecord", "load_dataset"]
