"""Feature variants a layer name asks for, computed from the raw box features of its base layers.

- ``c5``: the layer's raw box features;
- ``c5/wm64``: **width-matched**: the candidate's own box features projected to 64 dimensions
  (:func:`width_matched`), so that a wide layer (MobileNetV2's 1,280-channel c5) and a narrow one
  are scored in one dimension, and no metric sits at its N < D ceiling;
- ``pyramid/wm32``: **pyramid-level** box features (the idea of Det-LogME, Wang et al. 2024,
  "Efficient Transferability Assessment for Selection of Pre-trained Detectors"): each box read
  from c3, c4 or c5 by FPN's level rule (Lin et al., "Feature Pyramid Networks for Object
  Detection", CVPR 2017, eq. 1: ``k = floor(4 + log2(sqrt(w h) / 224))``, clamped to 3..5, with
  ``w, h`` in input pixels); each level's rows width-matched to 32 dimensions and scored on their
  own; the candidate's score is the mean of its levels' scores weighted by their box counts, over
  the levels a metric can score. A backbone without one of those levels (a plain ViT has c4
  alone) reads its boxes from the nearest level it has.

The variants change scores, not features: the cache keeps the base layers' raw features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from transferdet.errors import TransferdetError

PYRAMID_LEVELS = ("c3", "c4", "c5")
CANONICAL_SIDE, CANONICAL_LEVEL = 224, 4  # FPN's k0 and its ImageNet-size box
_NAME = re.compile(r"^(?P<base>[A-Za-z0-9_]+)(?:/wm(?P<width>\d+))?$")


@dataclass(frozen=True)
class LayerVariant:
    name: str  # as asked: c5, c5/wm64, pyramid/wm32
    base: tuple[str, ...]  # the layers whose raw features it is made from
    width: int | None  # width-matched to this many dimensions
    pyramid: bool


def parse_layer(name: str) -> LayerVariant:
    """A layer name with its variant (an error naming it when it is neither a layer nor a variant)."""
    found = _NAME.match(name)
    if found is None:
        raise TransferdetError(f"layer {name!r}: expected a layer (c5), c5/wmD (width-matched) or pyramid/wmD")
    width = int(found["width"]) if found["width"] else None
    if width is not None and width < 1:
        raise TransferdetError(f"layer {name!r}: the width must be at least 1")
    if found["base"] == "pyramid":
        if width is None:
            raise TransferdetError(f"layer {name!r}: pyramid levels differ in width; name one (pyramid/wm32)")
        return LayerVariant(name, PYRAMID_LEVELS, width, True)
    return LayerVariant(name, (found["base"],), width, False)


def base_layers(names: tuple[str, ...]) -> tuple[str, ...]:
    """The layers to extract for ``names`` (each once, in the order first needed)."""
    return tuple(dict.fromkeys(base for name in names for base in parse_layer(name).base))


def width_matched(features: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """``features`` centred and projected onto their own top ``width`` principal components, each
    component's sign fixed so that its largest-magnitude loading is positive, then scaled by one
    scalar to unit mean variance per dimension; and the dimensions kept (fewer than ``width`` when
    the features have fewer, or fewer rows). The projection depends on these features alone, and
    duplicating channels changes nothing but rounding."""
    centred = features - features.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    kept = min(width, int(np.count_nonzero(singular > singular.max(initial=0.0) * 1e-10)))
    kept = max(kept, 1)
    components = vt[:kept]
    signs = np.sign(components[np.arange(kept), np.argmax(np.abs(components), axis=1)])
    projected = centred @ (components * signs[:, None]).T
    scale = np.sqrt(np.mean(projected**2) or 1.0)
    return projected / scale, kept


def box_sides(boxes: np.ndarray, sizes: np.ndarray, image_size: int) -> np.ndarray:
    """``sqrt(w h)`` of each box in input pixels: ``boxes`` as coordinates / image size, ``sizes``
    each box's image (width, height); images are resized so that their longer side is ``image_size``."""
    scale = image_size / sizes.max(axis=1)
    width = (boxes[:, 2] - boxes[:, 0]) * sizes[:, 0] * scale
    height = (boxes[:, 3] - boxes[:, 1]) * sizes[:, 1] * scale
    return np.sqrt(np.clip(width * height, 1e-12, None))


def pyramid_only(names: tuple[str, ...]) -> set[str]:
    """The base layers only a pyramid variant asks for: a backbone may lack them (a plain ViT has
    c4 alone), and the boxes of a missing level are read from the nearest level it has."""
    variants = [parse_layer(name) for name in names]
    asked = {base for v in variants if not v.pyramid for base in v.base}
    return {base for v in variants if v.pyramid for base in v.base} - asked


def pyramid_levels(sides: np.ndarray, available: tuple[int, ...] = (3, 4, 5)) -> np.ndarray:
    """FPN's level of each box (3, 4 or 5) from its side in input pixels; where the backbone lacks
    that level, the nearest one in ``available`` (the finer of two equally near)."""
    level = np.clip(np.floor(CANONICAL_LEVEL + np.log2(sides / CANONICAL_SIDE)), 3, 5).astype(int)
    have = np.array(sorted(available))
    return have[np.argmin(np.abs(level[:, None] - have[None, :]), axis=1)]


def weighted_level_score(scores: list[float | None], counts: list[int]) -> float | None:
    """The levels' scores averaged with their box counts as weights, over the levels that scored."""
    pairs = [(s, c) for s, c in zip(scores, counts, strict=True) if s is not None and np.isfinite(s) and c > 0]
    if not pairs:
        return None
    return float(sum(s * c for s, c in pairs) / sum(c for _, c in pairs))
