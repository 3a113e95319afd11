"""The named protocols are pinned value by value: docs/protocols.md's table is the specification,
and every row must hold for the recipe as the code defines it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from transferdet.train.recipes import RECIPES, load_recipe

TABLE = Path(__file__).resolve().parents[1] / "docs" / "protocols.md"


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in RECIPES:
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_the_table_covers_every_published_protocol():
    pinned = {recipe for recipe, _, _ in _rows()}
    assert pinned == set(RECIPES) - {"quick"}
    assert len(_rows()) >= 50


@pytest.mark.parametrize(("recipe", "key", "value"), _rows(), ids=lambda v: str(v)[:30])
def test_each_pinned_value_holds(recipe, key, value):
    expected = yaml.safe_load(value)
    actual = getattr(load_recipe(recipe), key)
    assert actual == (pytest.approx(expected) if isinstance(expected, float | list) else expected)


def test_published_protocols_use_the_standard_anchors_and_only_quick_fits_them():
    assert {name for name in RECIPES if load_recipe(name).anchors == "auto"} == {"quick"}


def test_the_fpn_of_the_coco_protocols_has_its_norm():
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import build_detector
    from transferdet.train.assemble import detector_config

    recipe = load_recipe("coco_fpn_1x")
    config = detector_config(recipe, "faster_rcnn_fpn", 3, [])
    model = build_detector(build_backbone("timm:resnet10t"), config)
    norms = [m for m in model.backbone.fpn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # 4 lateral + 4 output convolutions; outside DDP the recipe's SyncBN is plain BN, as in the backbone
    assert config.norm == config.fpn_norm == "bn" and len(norms) == 8
    plain = build_detector(build_backbone("timm:resnet10t"), detector_config(load_recipe("quick"), "fcos", 3, []))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.backbone.fpn.modules())


def test_a_recipes_syncbn_is_decided_once_for_backbone_and_fpn(tmp_path):
    """Inside a process group the recipe's SyncBN reaches the backbone and the FPN alike; a
    detector asked for SyncBN gets it in both parts (its FPN used to turn it into BN on its own)."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import DetectorConfig, build_detector
    from transferdet.train.assemble import detector_config

    sync = build_detector(build_backbone("timm:resnet10t"), DetectorConfig("fcos", 3, norm="syncbn", fpn_norm="syncbn"))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.backbone.body.modules())
    fpn_norms = [m for m in sync.backbone.fpn.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    # FCOS: an FPN over c3-c5, 3 lateral + 3 output convolutions
    assert len(fpn_norms) == 6 and all(isinstance(m, torch.nn.SyncBatchNorm) for m in fpn_norms)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        config = detector_config(load_recipe("coco_fpn_1x"), "faster_rcnn_fpn", 3, [])
    finally:
        torch.distributed.destroy_process_group()
    assert config.norm == config.fpn_norm == "syncbn"


def test_recipe_show_says_how_syncbn_runs_in_one_process(cli):
    one = cli("recipe", "show", "coco_fpn_1x", "--json").json()
    assert one["norm"] == "syncbn (bn in one process) in the backbone, syncbn (bn in one process) in the FPN"
    eight = cli("recipe", "show", "coco_fpn_1x", "--world-size", "8", "--json").json()
    assert eight["norm"] == "syncbn in the backbone, syncbn in the FPN"
    assert cli("recipe", "show", "quick", "--json").json()["norm"].endswith("none in the FPN")


def test_the_adamw_1x_protocol_spares_norms_and_position_embeddings_from_weight_decay():
    from transferdet.train.assemble import build_optimizer

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = torch.nn.Parameter(torch.zeros(1, 4, 8))
            self.proj = torch.nn.Linear(8, 8)
            self.norm = torch.nn.LayerNorm(8)
            self.bn = torch.nn.BatchNorm2d(8)

    model = Tiny()
    decayed, spared = build_optimizer(load_recipe("adamw_1x"), model, world=1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == ["proj.bias", "proj.weight"]
    assert sorted(names[id(p)] for p in spared["params"]) == [
        "bn.bias",
        "bn.weight",
        "norm.bias",
        "norm.weight",
        "pos_embed",
    ]
    assert decayed["weight_decay"] == 0.05 and spared["weight_decay"] == 0.0
    (everything,) = build_optimizer(load_recipe("coco_fpn_1x"), model, world=1).param_groups
    assert len(everything["params"]) == len(names)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_show_prints_every_named_recipe(cli, name):
    result = cli("recipe", "show", name, "--images", "1000", "--json")
    assert result.code == 0, result.err
    view = result.json()
    assert view["recipe"] == name and "iterations" in view["length"]


def test_recipe_show_scales_to_the_total_batch(cli):
    view = cli("recipe", "show", "voc_c4_24k", "--set", "batch_size=4", "--world-size", "2", "--json").json()
    assert view["optimizer"] == "sgd, lr 0.02 at batch 16 -> 0.01 at batch 8"
    assert view["schedule"] == "lr 0.01 from 0, lr 0.001 from 18000, lr 0.0001 from 22000"
    assert view["warmup"] == "100 iterations, linear from x0.001" and view["test_size"] == 800
    epochs = cli(
        "recipe", "show", "adamw_1x", "--images", "12000", "--set", "batch_size=2", "--world-size", "8", "--json"
    )
    # 12 epochs of 12000 images at 16 per step = 9000 iterations; decays at epochs 8 and 11
    assert epochs.json()["schedule"] == "lr 0.0001 from 0, lr 1e-05 from 6000, lr 1e-06 from 8250"
    unknown = cli("recipe", "show", "coco_fpn_3x")
    assert unknown.code != 0 and "coco_fpn_3x" in unknown.err and len(unknown.err.strip().splitlines()) == 1


def test_the_vitdet_protocol_decays_the_lr_block_by_block_as_detectron2_does():
    """ViTDet's layer-wise decay (detectron2 ``get_vit_lr_decay_rate``): for a 12-block ViT, block
    i at 0.7 ** (12 - i), the patch embedding at 0.7 ** 13, the neck and heads at 1."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import DetectorConfig, build_detector
    from transferdet.train.assemble import build_optimizer

    model = build_detector(build_backbone("timm:deit_tiny_patch16_224@random"), DetectorConfig("fcos", 3))
    groups = build_optimizer(load_recipe("vitdet_1x"), model, world=1).param_groups
    lr = 1e-4 * 16 / 64  # the recipe's batch 16 against ViTDet's 64
    rate = {id(p): g["lr"] / lr for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    body = "backbone.body.stages.body.features.model."
    assert rate[id(named[body + "patch_embed.proj.weight"])] == pytest.approx(0.7**13)
    assert rate[id(named[body + "blocks.0.attn.qkv.weight"])] == pytest.approx(0.7**12)
    assert rate[id(named[body + "blocks.11.mlp.fc2.weight"])] == pytest.approx(0.7)
    assert rate[id(named["backbone.neck.c3.0.weight"])] == 1.0 and groups[0]["lr"] == pytest.approx(lr)
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(named[body + "pos_embed"])] == 0.0 and decay[id(named[body + "blocks.3.attn.qkv.weight"])] == 0.1
