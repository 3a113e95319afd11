"""transferdet: choose, fine-tune, evaluate and benchmark pretrained backbones for object detection."""

__version__ = "0.1.0"


def rank(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Rank backbones on a detection dataset: see :func:`transferdet.transfer.rank.rank`."""
    from transferdet.transfer.rank import rank as rank_models

    return rank_models(*args, **kwargs)
