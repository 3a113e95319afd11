"""Plain (single-scale) backbones: ViT and DeiT at any input size, ViTDet's simple pyramid under
every FPN detector, freeze_at by blocks, ranking with default options."""

from __future__ import annotations

import pytest
import torch

from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.detector_parts import SimplePyramid
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.norms import freeze_stages
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe
from transferdet.transfer.rank import RankSettings, rank
from transferdet.transfer.recommended import LAYER as RECOMMENDED_LAYER

VIT = "timm:vit_small_patch16_224"
DEIT = "timm:deit_tiny_patch16_224"


def test_a_vit_takes_any_input_size_on_the_stride_16_grid() -> None:
    backbone = build_backbone(f"{DEIT}@random").eval()
    assert backbone.feature_names == ["c4"] and backbone.strides == {"c4": 16} and backbone.channels == {"c4": 192}
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 96, 160))["c4"].shape == (1, 192, 6, 10)
    assert backbone.map_for("c5") == "c4"  # rank's default layer reads the one map


def test_a_patch_14_vit_lands_on_stride_16() -> None:
    backbone = build_backbone("timm:vit_small_patch14_dinov2@random").eval()
    assert backbone.strides == {"c4": 16}
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 96, 128))["c4"].shape[-2:] == (6, 8)


def test_a_fixed_size_model_sees_a_resized_image_and_gives_the_input_grid() -> None:
    backbone = build_backbone("timm:beit_base_patch16_224@random").eval()
    assert backbone.stages["body"].fixed == (224, 224)
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 64, 96))["c4"].shape[-2:] == (4, 6)


@pytest.mark.parametrize("kind", ["fcos", "mask_rcnn_fpn", "ssd"])  # Faster R-CNN, RetinaNet: the matrix below
def test_every_fpn_family_builds_on_the_simple_pyramid(kind) -> None:
    torch.manual_seed(0)
    body = build_backbone(f"{DEIT}@random")
    config = DetectorConfig(kind, 3, min_size=128, max_size=128, fpn_channels=64)  # GroupNorm(32) on 1x1 P7
    model = build_detector(body, config).train()
    if kind != "ssd":
        assert isinstance(model.backbone, SimplePyramid) and model.backbone.body is body
        assert not any(k.startswith("backbone.body.") for k, _ in model.backbone.neck.named_parameters())
    target = {"boxes": torch.tensor([[8.0, 10.0, 60.0, 70.0]]), "labels": torch.tensor([1])}
    if kind == "mask_rcnn_fpn":
        target["masks"] = torch.zeros(1, 128, 128, dtype=torch.uint8)
        target["masks"][0, 10:70, 8:60] = 1
    loss = sum(model([torch.rand(3, 128, 128)], [target]).values())
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in body.parameters())


def test_the_simple_pyramid_levels_follow_vitdet() -> None:
    body = build_backbone(f"{DEIT}@random").eval()
    model = build_detector(body, DetectorConfig("faster_rcnn_fpn", 3, min_size=64, max_size=64, fpn_channels=32))
    with torch.no_grad():
        maps = model.backbone(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape[-2:]) for k, v in maps.items()} == {
        "c2": (16, 24), "c3": (8, 12), "c4": (4, 6), "c5": (2, 3), "pool": (1, 2)
    }  # fmt: skip
    deconvs = [m for m in model.backbone.neck["c2"] if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [96, 48]  # two 2x2 deconvolutions, halving the width


def test_c4_is_a_one_line_error_for_a_plain_vit() -> None:
    with pytest.raises(TransferdetError, match="no separate stages from c4 to c5|needs a backbone with c4 and c5"):
        build_detector(build_backbone(f"{DEIT}@random"), DetectorConfig("faster_rcnn_c4", 3, min_size=64))


def test_freeze_at_counts_the_patch_embedding_then_blocks() -> None:
    backbone = build_backbone(f"{DEIT}@random")
    frozen = freeze_stages(backbone, 3)
    assert any(n.endswith("patch_embed.proj.weight") for n in frozen)
    assert any(".blocks.1." in n for n in frozen) and not any(".blocks.2." in n for n in frozen)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all(".blocks." in n for n in trainable)


@pytest.fixture(scope="module")
def dino_checkpoint(tmp_path_factory) -> str:
    """A DINO-layout file for ViT-S/16: the teacher's backbone under ``backbone.``, a student beside it."""
    import timm

    torch.manual_seed(7)
    weights = timm.create_model("vit_small_patch16_224").state_dict()
    path = tmp_path_factory.mktemp("dino") / "dino_vits16.pth"
    teacher = {f"backbone.{k}": v for k, v in weights.items() if not k.startswith("head")}
    torch.save({"teacher": teacher, "student": {f"module.{k}": v for k, v in teacher.items()}, "epoch": 1}, path)
    return f"{VIT}@{path}"


ACCEPTANCE = [f"{VIT}@random", f"{DEIT}@random", "dino", "torchvision:regnet_y_400mf@random"]


@pytest.mark.parametrize("detector", ["fcos", "faster_rcnn_fpn", "retinanet"])
@pytest.mark.parametrize("model", ACCEPTANCE)
def test_each_backbone_trains_two_iterations_under_each_fpn_family(model, detector, dino_checkpoint, synthetic) -> None:
    from transferdet.data import formats
    from transferdet.data.transforms import TorchDetectionDataset, collate_detection, detection_transforms

    torch.manual_seed(0)
    spec = dino_checkpoint if model == "dino" else model
    config = DetectorConfig(detector, 10, min_size=96, max_size=96, fpn_channels=64)
    detector_model = build_detector(build_backbone(spec), config).train()
    records = formats.read(synthetic).records("train")[:2]
    data = TorchDetectionDataset(records, detection_transforms(True, 96), label_offset=detector_model.label_offset)
    images, targets = collate_detection([data[0], data[1]])
    optimizer = torch.optim.SGD([p for p in detector_model.parameters() if p.requires_grad], lr=0.01)
    losses = []
    for _ in range(2):
        loss = sum(detector_model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))


def test_a_plain_vit_trains_through_the_training_loop(synthetic, tmp_path) -> None:
    overrides = ["iterations=2", "batch_size=2", "num_workers=0", "min_size=[96]", "max_size=96", "fpn_channels=64"]
    seen: list[dict] = []
    job = TrainJob(synthetic, f"{DEIT}@random", "fcos", load_recipe("quick", overrides), tmp_path / "run", device="cpu")
    metrics = train(job, on_iteration=lambda i, n, s: seen.append(s))
    assert len(seen) == 2 and all(torch.isfinite(torch.tensor(s["loss"])) for s in seen)
    assert metrics["iterations"] == 2 and metrics["AP"] is not None


@pytest.mark.parametrize("model", ACCEPTANCE)
def test_each_backbone_ranks_with_default_options(model, dino_checkpoint, synthetic) -> None:
    spec = dino_checkpoint if model == "dino" else model
    rows = rank(synthetic, [spec], ["logme"], settings=RankSettings(image_size=96, max_images=6))
    assert [r["layer"] for r in rows] == [RECOMMENDED_LAYER] and rows[0]["score"] is not None, rows


def test_a_torchvision_vit_is_a_plain_backbone_at_its_patch_stride() -> None:
    backbone = build_backbone("torchvision:vit_b_32@random").eval()
    assert backbone.strides == {"c5": 32} and backbone.channels == {"c5": 768}
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 96, 128))["c5"].shape == (1, 768, 3, 4)  # resized to 224 and back
    frozen = freeze_stages(backbone, 2)
    assert "stages.body.conv_proj.weight" in frozen and any(".encoder_layer_0." in n for n in frozen)
    assert not any(".encoder_layer_1." in n for n in frozen)
    model = build_detector(backbone, DetectorConfig("fcos", 3, min_size=128, max_size=128, fpn_channels=64))
    assert isinstance(model.backbone, SimplePyramid)
    assert len(model.backbone.neck["c3"]) == 8  # deconv, LN, GELU, deconv (stride 32 to 8); 1x1, LN, 3x3, LN


def test_a_stage_list_that_runs_at_one_size_takes_the_resizing_path() -> None:
    backbone = build_backbone("timm:botnet26t_256@random").eval()  # attention over a fixed 16 x 16 grid
    assert backbone.stages["body"].fixed == (256, 256)
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 128, 160))["c5"].shape[-2:] == (4, 5)
    assert "body" not in build_backbone("timm:resnet10t@random").stages  # any size: the stage list, as always


@pytest.mark.parametrize(
    "spec",
    [
        "timm:levit_128s",  # maps from c4 only: FCOS's anchors follow the levels the body has
        "torchvision:squeezenet1_1",  # no stride-32 map: rank's c5 reads c4
        "timm:lambda_resnet26t",  # a 5-D weight that channels_last cannot convert
        "timm:selecsls42",  # stages that pass lists: the wrapper's path
    ],
)
def test_backbones_that_used_to_fail_train_a_step_and_give_features(spec, synthetic) -> None:
    from transferdet.data import formats
    from transferdet.transfer.features import extract_layers

    torch.manual_seed(0)
    backbone = build_backbone(f"{spec}@random")
    model = build_detector(backbone, DetectorConfig("fcos", 3, min_size=128, max_size=128)).train()
    target = [{"boxes": torch.tensor([[10.0, 12.0, 80.0, 90.0]]), "labels": torch.tensor([1])}]
    loss = sum(model([torch.rand(3, 128, 128)], target).values())
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    records = formats.read(synthetic).records("train")[:2]
    features = extract_layers(backbone, records, ["c5"], "local", 96, 2, "cpu")["c5"].features
    assert features.std(axis=0).max() > 0
