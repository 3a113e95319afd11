"""Named training protocols as validated configs (pydantic): what to train, how long, what is frozen.

The published protocols are pinned value by value against their source configs (detectron2, MoCo,
mmdetection, the TMOD code); docs/protocols.md lists each value with its source, and
``transferdet recipe show NAME`` prints the effective schedule.

- ``voc_c4_24k``: Faster R-CNN C4, 24k iterations at batch 16, lr 0.02, steps at 18k/22k, warmup 100,
  train short side 480-800 (step 32), test 800, BatchNorm trained (SyncBN under DDP), nothing
  frozen: the VOC transfer protocol of MoCo (He et al., CVPR 2020).
- ``coco_fpn_1x`` / ``coco_fpn_2x``: Mask/Faster R-CNN R50-FPN, 90k/180k iterations at batch 16,
  lr 0.02, warmup 1000, SyncBN in backbone and FPN (He et al. 2020; detectron2's schedules).
- ``tmod_frozen``: the TMOD paper's transfer protocol: backbone body frozen, new heads, Adam lr 1e-4,
  ReduceLROnPlateau on a validation split's AP, no augmentation. ``tmod_two_step``: the same, then
  all layers at a 10x lower learning rate.
- ``adamw_1x`` (any detector) / ``retinanet_1x_adamw``: the Swin-style 1x for transformer backbones
  (Liu et al., ICCV 2021; mmdetection's configs): AdamW lr 1e-4, weight decay 0.05 except on norms
  and position embeddings, 12 epochs, steps at epochs 8 and 11, warmup 1000.
- ``quick``: a short CPU run that still learns (128 px images, 16 epochs, batch 8, no flip, a
  128-channel FPN): on 400 synthetic digits, FCOS on a random ResNet-18 reaches AP50 0.70 in 4 min.

Published protocols use the detector's standard anchors (``anchors: default``); ``auto`` (anchors
fitted to the training boxes) is for custom data.

Learning rates scale linearly with the total batch size (Goyal et al., 2017) from ``base_batch``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from transferdet.errors import TransferdetError


class Recipe(BaseModel):
    """A training protocol. Unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    description: str = ""
    detector: str | None = None  # the protocol's detector, if it fixes one
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.02, gt=0)
    base_batch: int = Field(16, ge=1)  # the batch size ``lr`` is given for
    momentum: float = 0.9
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(16, ge=1)
    iterations: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    schedule: Literal["multistep", "cosine", "plateau", "constant"] = "multistep"
    steps: list[float] = [0.75, 0.9167]  # fractions of the run (or iterations when > 1)
    gamma: float = 0.1
    warmup_iterations: int = Field(100, ge=0)
    warmup_factor: float = 0.001
    min_size: list[int] = [800]  # training short sides (one is drawn per image)
    max_size: int = 1333
    test_size: int | None = Field(None, ge=16)  # evaluation short side; None: the last of min_size
    flip: float = Field(0.5, ge=0, le=1)
    norm: Literal["frozen_bn", "bn", "syncbn", "gn"] = "frozen_bn"
    fpn_norm: Literal["bn", "syncbn", "gn"] | None = None  # after the FPN's convolutions (None: none)
    decay_norm_and_position: bool = True  # False: no weight decay on norms and position embeddings (Swin)
    # a plain ViT's layer-wise lr decay (ViTDet): block i of n at lr * decay ** (n - i), the patch
    # embedding at decay ** (n + 1), the rest at lr; None: one lr
    layer_decay: float | None = Field(None, gt=0, le=1)
    freeze_at: int = Field(0, ge=0, le=5)
    freeze_body: bool = False  # train only the new heads
    second_step_lr_factor: float | None = None  # then unfreeze everything at lr * factor
    grad_clip: float | None = None
    # autocast for the training step (see transferdet.precision.training_precision): fp32, bf16,
    # fp16 (with a gradient scaler) or auto; evaluation stays float32
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto"
    anchors: Literal["auto", "default"] = "auto"
    aspect_grouping: bool = True  # landscape and portrait images in separate batches
    fpn_channels: int = Field(256, ge=32, multiple_of=32)  # the RetinaNet/FCOS heads' GroupNorm has 32 groups
    rois_per_image: int | None = Field(None, ge=1)  # R-CNN box head: sampled proposals per image (torchvision: 512)
    eval_every: int | None = None  # iterations; None: at the end only
    checkpoint_every: int = Field(500, ge=1)
    num_workers: int = Field(2, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_amp(cls, values: object) -> object:
        """Runs written before ``precision`` stored ``amp`` (true: reduced precision on GPUs)."""
        if isinstance(values, dict) and "amp" in values:
            values = dict(values)
            if not values.pop("amp"):
                values.setdefault("precision", "fp32")
        return values

    @model_validator(mode="after")
    def _one_length(self) -> Recipe:
        if (self.iterations is None) == (self.epochs is None):
            raise ValueError("give exactly one of iterations and epochs")
        return self

    def frozen_parts(self) -> str:
        if self.freeze_body:
            return "backbone body frozen (heads only)" + (
                f", then everything at lr x {self.second_step_lr_factor}" if self.second_step_lr_factor else ""
            )
        return f"stages up to c{self.freeze_at} frozen" if self.freeze_at else "nothing frozen"


RECIPES: dict[str, dict] = {
    "quick": {
        "description": "short CPU run that still learns: 128 px images, batch 8, 16 epochs, 128-channel FPN, no flip",
        "optimizer": "adamw",
        "lr": 1e-3,
        "base_batch": 8,
        "weight_decay": 1e-4,
        "batch_size": 8,
        "epochs": 16,
        "schedule": "cosine",
        "warmup_iterations": 50,
        "min_size": [128],
        "max_size": 128,
        # a short run learns faster without flips (and a flip changes what a glyph or text means);
        # a 128-channel FPN and heads cost half of a 256-channel one at this size
        "flip": 0.0,
        "fpn_channels": 128,
        "norm": "bn",
        "checkpoint_every": 100,
        "num_workers": 1,
    },
    # the published protocols, value by value against their configs: docs/protocols.md
    "voc_c4_24k": {
        "description": "Faster R-CNN C4 on VOC07+12 (MoCo's detection transfer protocol)",
        "detector": "faster_rcnn_c4",
        "lr": 0.02,
        "base_batch": 16,
        "iterations": 24000,
        "steps": [18000, 22000],
        "warmup_iterations": 100,
        "warmup_factor": 0.001,
        "min_size": list(range(480, 801, 32)),
        "max_size": 1333,
        "test_size": 800,
        "norm": "syncbn",
        "anchors": "default",
        "checkpoint_every": 2000,
    },
    "coco_fpn_1x": {
        "description": "Mask/Faster R-CNN R50-FPN, 1x schedule (90k iterations), SyncBN in backbone and FPN",
        "lr": 0.02,
        "base_batch": 16,
        "iterations": 90000,
        "steps": [60000, 80000],
        "warmup_iterations": 1000,
        "warmup_factor": 0.001,
        "min_size": [640, 672, 704, 736, 768, 800],
        "max_size": 1333,
        "test_size": 800,
        "norm": "syncbn",
        "fpn_norm": "syncbn",
        "anchors": "default",
        "checkpoint_every": 5000,
    },
    "tmod_frozen": {
        "description": "TMOD transfer protocol: frozen backbone body, new heads, Adam 1e-4, plateau on AP",
        "optimizer": "adam",
        "lr": 1e-4,
        "weight_decay": 0.0,
        "schedule": "plateau",
        "epochs": 30,
        "flip": 0.0,
        "min_size": [512],
        "max_size": 512,
        "freeze_body": True,
        "eval_every": 500,
        "anchors": "default",
    },
    "adamw_1x": {
        "description": "Swin-style 1x for transformer backbones: AdamW 1e-4, weight decay 0.05 (none on norms "
        "and position embeddings), 12 epochs, steps at 8 and 11",
        "optimizer": "adamw",
        "lr": 1e-4,
        "base_batch": 16,
        "weight_decay": 0.05,
        "decay_norm_and_position": False,
        "epochs": 12,
        "steps": [8 / 12, 11 / 12],
        "warmup_iterations": 1000,
        "warmup_factor": 0.001,
        "min_size": [800],
        "max_size": 1333,
        "anchors": "default",
        "checkpoint_every": 5000,
    },
}
RECIPES["vitdet_1x"] = {
    "description": "ViTDet's COCO settings for plain ViTs (AdamW 1e-4 at batch 64, weight decay 0.1, layer-wise "
    "lr decay 0.7, 1024 px) on a 1x length: docs/protocols.md says which values are published",
    "optimizer": "adamw",
    "lr": 1e-4,
    "base_batch": 64,
    "weight_decay": 0.1,
    "decay_norm_and_position": False,
    "layer_decay": 0.7,
    "epochs": 12,
    "steps": [163889 / 184375, 177546 / 184375],
    "warmup_iterations": 250,
    "warmup_factor": 0.001,
    "min_size": [1024],
    "max_size": 1024,
    "flip": 0.5,
    "anchors": "default",
    "checkpoint_every": 5000,
}
RECIPES["retinanet_1x_adamw"] = {
    **RECIPES["adamw_1x"],
    "description": "RetinaNet under the Swin-style AdamW 1x (transformer backbones)",
    "detector": "retinanet",
}


RECIPES["coco_fpn_2x"] = {
    **RECIPES["coco_fpn_1x"],
    "description": "Mask/Faster R-CNN R50-FPN, 2x schedule (180k iterations), SyncBN in backbone and FPN",
    "iterations": 180000,
    "steps": [120000, 160000],
}
RECIPES["tmod_two_step"] = {
    **RECIPES["tmod_frozen"],
    "description": "TMOD two-step: frozen body first, then all layers at a 10x lower lr",
    "second_step_lr_factor": 0.1,
}


def _parse_value(text: str) -> object:
    from transferdet.safe_load import load_yaml_text

    return load_yaml_text(text, "--set")


def load_recipe(name: str, overrides: list[str] | None = None, config_file: dict | None = None) -> Recipe:
    """Recipe ``name`` with a config file's keys and ``key=value`` overrides applied, validated."""
    if name not in RECIPES:
        raise TransferdetError(f"unknown recipe {name!r} (choose from {', '.join(RECIPES)})")
    values: dict = {"name": name, **RECIPES[name]}
    changes = dict(config_file or {})
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise TransferdetError(f"--set {item!r}: expected key=value")
        changes[key.strip()] = _parse_value(text)
    for key, value in changes.items():
        values[key] = value
        if key in ("iterations", "epochs") and value is not None:  # a length given replaces the recipe's own
            values["epochs" if key == "iterations" else "iterations"] = None
    try:
        return Recipe(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "recipe"
        raise TransferdetError(f"recipe {name}: {where}: {first['msg']}") from None


def recipe_detector(recipe: Recipe, detector: str | None) -> str:
    """The detector to train: ``detector`` as asked, else the one the recipe fixes. Asking for
    another detector than a protocol's own is an error naming both (its numbers would not be the
    protocol's)."""
    if detector is None:
        if recipe.detector is None:
            raise TransferdetError(f"recipe {recipe.name} fixes no detector: give --detector")
        return recipe.detector
    if recipe.detector is not None and detector != recipe.detector:
        raise TransferdetError(
            f"recipe {recipe.name} trains {recipe.detector}, not {detector} "
            f"(drop --detector, or choose a recipe that fixes none)"
        )
    return detector
