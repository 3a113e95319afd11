"""torchvision's detection weights as a detector source: ``torchvision:fasterrcnn_resnet50_fpn@FILE``.

FILE is the state dict that ``torchvision.models.detection``'s weights are (read as data). It is
first loaded into torchvision's own model of the file's class count, whose load hooks upgrade the
legacy key names (FPN and RPN blocks before version 2), so that a file of any torchvision release
reads the same; a file that does not fit is one error naming the keys. The detector is then
mapped onto transferdet's family of the same structure over ``torchvision:resnet50`` (the body's
names paired in order, shapes checked; FPN, RPN, RoI and head names are torchvision's own in both),
with torchvision's numerics: FrozenBatchNorm with eps 0 for the v1 COCO weights (what torchvision's
builders do with ``COCO_V1``), its score threshold and detections per image. COCO's category names
come from torchvision's weights metadata when the class count is COCO's.

Builders whose structure transferdet's families do not reproduce (the v2 heads, MobileNetV3-FPN,
SSD300, SSDlite320) are used as torchvision builds them (:mod:`~transferdet.models.native_detectors`),
their file's keys unchanged; Keypoint R-CNN (transferdet detects no keypoints) is refused in one line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from transferdet.errors import TransferdetError
from transferdet.models.detector_transfer import DetectorSource
from transferdet.models.native_detectors import NATIVE
from transferdet.models.specs import ModelSpec

BODY = "torchvision:resnet50"
# blocks in the body's third stage (res4, torchvision's layer3) -> the ResNet a mapped detector is built over:
# torchvision's builders are R50; detectron2's and MMDetection's zoos hold R101 detectors of the same structure
DEPTHS = {6: BODY, 23: "torchvision:resnet101"}
# builder -> (transferdet family, FrozenBatchNorm eps of its COCO_V1 weights, score threshold, detections)
MAPPED: dict[str, tuple[str, float, float, int]] = {
    "fasterrcnn_resnet50_fpn": ("faster_rcnn_fpn", 0.0, 0.05, 100),
    "maskrcnn_resnet50_fpn": ("mask_rcnn_fpn", 0.0, 0.05, 100),
    "retinanet_resnet50_fpn": ("retinanet", 0.0, 0.05, 300),
    "fcos_resnet50_fpn": ("fcos", 1e-5, 0.2, 100),
}
SOFTMAX = ("faster_rcnn_fpn", "mask_rcnn_fpn")


def detection_builders() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def is_torchvision_detector(spec: ModelSpec) -> bool:
    return spec.library == "torchvision" and spec.name in detection_builders()


# SSD's first classification map and its default boxes per cell: the class count is its rows / boxes
SSD_LOGITS = {"ssd300_vgg16": ("head.classification_head.module_list.0.weight", 4),
              "ssdlite320_mobilenet_v3_large": ("head.classification_head.module_list.0.1.weight", 6)}  # fmt: skip


def _class_count(kind: str, state: dict[str, torch.Tensor], name: str = "") -> int:
    """The file's class count as torchvision's builder ``name`` takes it (background included)."""
    if kind in SOFTMAX:
        return int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    key, anchors = SSD_LOGITS.get(name, ("head.classification_head.cls_logits.weight", 9 if kind == "retinanet" else 1))
    return int(state[key].shape[0] // anchors)


def _torchvision_state(name: str, kind: str, state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """``state`` as torchvision's current model of that builder names it (legacy keys upgraded)."""
    import torchvision

    try:
        count = _class_count(kind, state, name)
    except KeyError as error:
        raise TransferdetError(f"{path}: not a torchvision {name} state dict (no {error.args[0]})") from None
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=count)
    result = model.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        shown = ", ".join([*missing[:4], *result.unexpected_keys[:4]])
        raise TransferdetError(f"{path}: does not fit torchvision's {name} ({shown})")
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def body_of(state: dict[str, torch.Tensor], path: str) -> str:
    """The ResNet a file's body is (torchvision's names), told by its third stage's blocks."""
    blocks = _third_stage_blocks(state, "backbone.body.layer3.")
    if blocks not in DEPTHS:
        raise TransferdetError(f"{path}: its body's third stage has {blocks} blocks: "
                               "neither ResNet-50's (6) nor ResNet-101's (23)")  # fmt: skip
    return DEPTHS[blocks]


def _third_stage_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    """How many blocks the tensors under ``prefix`` (a ResNet's third stage) belong to."""
    return len({key[len(prefix) :].split(".")[0] for key in state if key.startswith(prefix)})


def _our_names(state: dict[str, torch.Tensor], path: str, body: str) -> dict[str, torch.Tensor]:
    """torchvision's body names (``backbone.body.layer1...``) as transferdet's ResNet ``body`` names
    them, paired in order with equal shapes; every other key is the same in both."""
    from transferdet.models.backbones import build_backbone

    with torch.device("meta"):
        ours = [k for k in build_backbone(f"{body}@random").state_dict() if not k.endswith("num_batches_tracked")]
    theirs = [k for k in state if k.startswith("backbone.body.")]
    if len(theirs) != len(ours):
        raise TransferdetError(f"{path}: its body has {len(theirs)} tensors, {body} {len(ours)}")
    mapped = {k: v for k, v in state.items() if not k.startswith("backbone.body.")}
    for mine, key in zip(ours, theirs, strict=True):
        mapped[f"backbone.body.{mine}"] = state[key]
    return mapped


def _categories(name: str, count: int) -> list[str] | None:
    import torchvision

    weights = torchvision.models.get_model_weights(name)
    categories = list(weights.DEFAULT.meta.get("categories", []))
    return categories if len(categories) == count else None


def torchvision_layout(spec: ModelSpec) -> tuple[str, dict[str, torch.Tensor], list[str] | None, bool]:
    """The file's detector kind, its tensors under torchvision's current names (a detectron2 file's
    converted: :mod:`~transferdet.models.detectron2_detectors`; an MMDetection file's body and FPN:
    :mod:`~transferdet.models.mmdet_detectors`), its class names where known, and whether it came
    from another library (whose numerics are not torchvision's v1 COCO weights')."""
    from transferdet.models.checkpoints import read_checkpoint
    from transferdet.models.detectron2_detectors import convert, is_detectron2_detector
    from transferdet.models.detectron2_names import bgr255_conv_to_rgb, detectron2_input_is_bgr255
    from transferdet.models.mmdet_detectors import from_mmdet, is_mmdet_detector, mmdet_classes

    if spec.name not in MAPPED:
        raise TransferdetError(
            f"{spec}: torchvision's {spec.name} is not a detector source (transferdet detects boxes and masks; "
            f"sources: {', '.join([*MAPPED, *NATIVE])})"
        )
    kind = MAPPED[spec.name][0]
    file = spec.checkpoint if spec.weights != "pretrained" else downloaded(spec.name)
    checkpoint = read_checkpoint(file)
    if is_mmdet_detector(checkpoint.tensors):  # the body and the FPN only (mmdet_detectors.py says why)
        state = from_mmdet(checkpoint.tensors, 4 if kind in SOFTMAX else 3)
        return kind, state, mmdet_classes(checkpoint.notes), True
    if not is_detectron2_detector(checkpoint.tensors):
        state = _torchvision_state(spec.name, kind, checkpoint.tensors, str(file))
        count = _class_count(kind, state)
        categories = _categories(spec.name, count)
        return kind, state, (categories[1:] if categories and kind in SOFTMAX else categories), False
    state = convert(checkpoint.tensors, kind, to_torchvision=True)
    if detectron2_input_is_bgr255(checkpoint.notes):  # MSRA's weights: BGR 0-255 input
        state["backbone.body.conv1.weight"] = bgr255_conv_to_rgb(state["backbone.body.conv1.weight"])
    coco = [c for c in (_categories(spec.name, 91) or []) if c not in ("__background__", "N/A")]
    count = _class_count(kind, state) - (1 if kind in SOFTMAX else 0)
    return kind, state, (coco if len(coco) == count else None), True


def read_native_detector(spec: ModelSpec) -> DetectorSource:
    """The whole detector a torchvision file of a builder in :data:`NATIVE` holds, under its own
    names, with the builder's structure, numerics and COCO names."""
    from transferdet.models.checkpoints import read_checkpoint
    from transferdet.models.detectors import SOFTMAX_DETECTORS

    kind, threshold, detections, min_size, max_size = NATIVE[spec.name]
    file = spec.checkpoint if spec.weights != "pretrained" else downloaded(spec.name)
    state = _torchvision_state(spec.name, kind, read_checkpoint(file).tensors, str(file))
    background = 1 if kind in SOFTMAX_DETECTORS else 0
    count = _class_count(kind, state, spec.name)
    categories = _categories(spec.name, count)
    record = {"kind": kind, "num_classes": count - background, "builder": spec.name, "min_size": [min_size],
              "max_size": max_size, "box_score_thresh": threshold, "detections_per_image": detections,
              "norm": "bn" if spec.name.startswith("ssdlite") else "frozen_bn"}  # fmt: skip
    # (SSDlite's builder keeps trained BatchNorm, eps 0.001, with its COCO weights; the others freeze the body's)
    names = categories[background:] if categories else None
    return DetectorSource(str(spec.checkpoint or spec.weights), record, names, state)


def read_torchvision_detector(spec: ModelSpec) -> DetectorSource:
    """The whole detector a torchvision (or detectron2) detection file holds, mapped onto transferdet's."""
    from transferdet.models.detectors import DetectorConfig

    if spec.name in NATIVE:
        return read_native_detector(spec)
    kind, state, classes, detectron2 = torchvision_layout(spec)
    _, eps, threshold, detections = MAPPED[spec.name]
    try:
        count = _class_count(kind, state) - (1 if kind in SOFTMAX else 0)
    except KeyError:  # a file without heads (MMDetection's, carried as body and FPN): its class names
        count = len(classes or [None])
    config = DetectorConfig(kind, count, fpn_channels=256, norm="frozen_bn", box_score_thresh=threshold,
                            detections_per_image=detections, frozen_bn_eps=1e-5 if detectron2 else eps)  # fmt: skip
    path = str(spec.checkpoint or spec.weights)
    body = body_of(state, path)  # the file's depth: R50, or R101 from detectron2's or MMDetection's zoo
    return DetectorSource(path, config.to_record(), classes, _our_names(state, path, body), body=f"{body}@random")


def export_detectron2_detector(spec: ModelSpec, path: Path) -> list[str]:
    """Write a torchvision-layout detector file in detectron2's names and row orders (``.pkl``,
    RGB input with ImageNet mean/std stated in its notes). Returns the keys written."""
    import pickle

    from transferdet.atomic import atomic_write_bytes
    from transferdet.models.detectron2_detectors import convert
    from transferdet.models.detectron2_names import IMAGENET_STD_255

    kind, state, _, _ = torchvision_layout(spec)
    model = {k: v.detach().cpu().numpy() for k, v in convert(state, kind, to_torchvision=False).items()}
    content = {"model": model, "__author__": "transferdet", "matching_heuristics": True, "input_format": "RGB",
               "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": list(IMAGENET_STD_255)}  # fmt: skip
    atomic_write_bytes(path, pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))
    return sorted(model)


def downloaded(name: str) -> Path:
    """torchvision's own COCO weights of builder ``name`` (``@pretrained``), fetched once into
    torch's hub cache (needs internet), then read as data like any file."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=True)
    return path


def body_spec(spec: ModelSpec) -> ModelSpec:
    """The spec of the backbone a mapped detector source is built over (for its parameter count and
    extractor path); any other spec, a builder used as torchvision builds it included, as it is."""
    if not is_torchvision_detector(spec) or spec.name in NATIVE:
        return spec
    library, name = BODY.split(":")
    return replace(spec, library=library, name=name, weights="random")


def is_native_detector(spec: ModelSpec) -> bool:
    """A builder used as torchvision builds it (:mod:`~transferdet.models.native_detectors`)."""
    return is_torchvision_detector(spec) and spec.name in NATIVE


def native_body_parameters(name: str) -> int:
    """The parameters of builder ``name``'s body (its FPN's trunk or SSD's feature layers; norms'
    affine tensors counted, as for every backbone), counted on a model built without memory."""
    import torchvision

    from transferdet.models.native_detectors import native_body

    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
        return sum(p.numel() for p in native_body(model).parameters())


def body_arch(arch: str, state: dict[str, torch.Tensor] | None = None) -> str:
    """The backbone architecture a detector trained from ``arch`` has: for a mapped torchvision
    builder, the ResNet its family is built over, R50 or, where the trained ``state``'s third stage
    has 23 blocks (a source from detectron2's or MMDetection's zoo), R101."""
    if not (arch.startswith("torchvision:") and arch.split(":", 1)[-1] in MAPPED):
        return arch
    return DEPTHS.get(_third_stage_blocks(state or {}, "backbone.body.stages.layer3."), BODY)
