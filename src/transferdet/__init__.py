"""transferdet: choose, fine-tune, evaluate and benchmark pretrained backbones for object detection.

The public face: :func:`rank` (with :class:`RankSettings`), :mod:`transferdet.models`
(``build_backbone``, ``matched_weights``, ``parse_spec``, ``build_detector``) and
:mod:`transferdet.metrics` (the transferability metrics as pure functions of arrays).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RankSettings", "rank"]


def rank(*args: Any, **kwargs: Any) -> list[dict]:
    """Rank backbones on a detection dataset: see :func:`transferdet.transfer.rank.rank`."""
    from transferdet.transfer.rank import rank as rank_models

    return rank_models(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "RankSettings":  # imported on first use: ``import transferdet`` stays light
        from transferdet.transfer.rank import RankSettings

        return RankSettings
    raise AttributeError(f"module 'transferdet' has no attribute {name!r}")
