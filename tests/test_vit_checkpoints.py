"""Plain-ViT checkpoint layouts, each written with its native names and shapes: the loaded backbone
gives what timm's own load of the same weights gives."""

from __future__ import annotations

import timm
import torch

from transferdet.models.backbone import at_stride
from transferdet.models.backbones import build_backbone

X = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _weights(name: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = timm.create_model(name)
    with torch.no_grad():  # non-trivial tokens and position embeddings (timm starts some at zero)
        for key in ("cls_token", "reg_token", "pos_embed"):
            if getattr(model, key, None) is not None:
                getattr(model, key).normal_(0, 0.02)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _timm_maps(name: str, path) -> torch.Tensor:
    """timm's own load of ``path`` (its checkpoint filter included): the last map."""
    model = timm.create_model(name, features_only=True, pretrained=True, pretrained_cfg_overlay={"file": str(path)},
                              dynamic_img_size=True, dynamic_img_pad=True).eval()  # fmt: skip
    with torch.no_grad():
        return at_stride(model(X)[-1], 16, 224, 224)


def _ours(name: str, path) -> tuple[torch.Tensor, object]:
    backbone = build_backbone(f"timm:{name}@{path}").eval()
    with torch.no_grad():
        return backbone(X)["c4"], backbone.load_report


def test_dino_teacher_under_backbone_prefix(tmp_path) -> None:
    name = "vit_small_patch16_224"
    teacher, student = _weights(name, 1), _weights(name, 2)
    content = {
        "teacher": {f"backbone.{k}": v for k, v in teacher.items() if not k.startswith("head")}
        | {"head.mlp.0.weight": torch.zeros(8, 384), "head.last_layer.weight_g": torch.ones(1, 8)},
        "student": {f"module.backbone.{k}": v for k, v in student.items() if not k.startswith("head")},
        "epoch": 100,
    }
    torch.save(content, tmp_path / "dino.pth")
    torch.save({k: v for k, v in teacher.items() if not k.startswith("head")}, tmp_path / "flat.pth")
    ours, report = _ours(name, tmp_path / "dino.pth")
    assert torch.allclose(ours, _timm_maps(name, tmp_path / "flat.pth"), atol=1e-5)
    assert report.clean and "'teacher'" in report.layout and "'backbone.'" in report.layout


def test_dinov2_with_registers_in_its_own_names(tmp_path) -> None:
    name = "vit_small_patch14_reg4_dinov2"
    weights = _weights(name, 3)
    first = torch.randn(1, 1, 384) * 0.02  # the class token's position embedding, folded into cls_token by timm
    native = {k: v for k, v in weights.items() if k not in ("reg_token", "cls_token", "pos_embed")}
    native |= {
        "register_tokens": weights["reg_token"],
        "cls_token": weights["cls_token"] - first[:, 0],
        "pos_embed": torch.cat([first, weights["pos_embed"]], dim=1),
        "mask_token": torch.zeros(1, 384),
    }
    torch.save(native, tmp_path / "dinov2.pth")
    torch.save(weights, tmp_path / "timm.pth")
    ours, report = _ours(name, tmp_path / "dinov2.pth")
    assert torch.allclose(ours, _timm_maps(name, tmp_path / "timm.pth"), atol=1e-5)
    assert report.clean


def test_mae_wrapped_in_model_with_another_grid(tmp_path) -> None:
    name = "vit_small_patch16_224"
    weights = _weights(name, 4)
    grid = timm.layers.resample_abs_pos_embed(weights["pos_embed"], (16, 16), num_prefix_tokens=1)  # a 256 px run
    torch.save({"model": weights | {"pos_embed": grid}, "epoch": 799}, tmp_path / "mae.pth")
    ours, report = _ours(name, tmp_path / "mae.pth")
    assert torch.allclose(ours, _timm_maps(name, tmp_path / "mae.pth"), atol=1e-5)  # timm resamples it alike
    assert report.clean and tuple(grid.shape) == (1, 257, 384)


def test_a_distilled_deit_loads_into_the_plain_deit(tmp_path) -> None:
    name = "deit_tiny_patch16_224"
    weights = _weights(name, 5)
    position = weights["pos_embed"]
    distilled = weights | {
        "dist_token": torch.randn(1, 1, 192),
        "pos_embed": torch.cat([position[:, :1], torch.randn(1, 1, 192), position[:, 1:]], dim=1),
        "head_dist.weight": torch.zeros(1000, 192),
        "head_dist.bias": torch.zeros(1000),
    }
    torch.save({"model": distilled}, tmp_path / "deit.pth")
    torch.save(weights, tmp_path / "timm.pth")
    ours, report = _ours(name, tmp_path / "deit.pth")
    assert torch.allclose(ours, _timm_maps(name, tmp_path / "timm.pth"), atol=1e-5)
    assert report.clean


def test_zoo_inspect_shows_the_simple_pyramid_and_the_matched_keys(cli, tmp_path) -> None:
    weights = _weights("vit_small_patch16_224", 6)
    torch.save({"teacher": {f"backbone.{k}": v for k, v in weights.items()}}, tmp_path / "dino.pth")
    result = cli("zoo", "inspect", f"timm:vit_small_patch16_224@{tmp_path / 'dino.pth'}", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["features"] == {"c4": {"channels": 384, "stride": 16}} and summary["input_size"] == "any"
    assert summary["simple_pyramid"] == {
        "c2": "2 deconvolutions of c4", "c3": "1 deconvolution of c4", "c4": "c4", "c5": "c4 max-pooled 2x"
    }  # fmt: skip
    assert "blocks.11.mlp.fc2.weight" in summary["checkpoint"]["matched_keys"]
    assert summary["checkpoint"]["clean"] and "'teacher'" in summary["checkpoint"]["layout"]
    shown = cli("zoo", "inspect", f"timm:vit_small_patch16_224@{tmp_path / 'dino.pth'}")
    assert "blocks.# (144)" in shown.out and "simple pyramid" in shown.out
