"""``transferdet zoo ...``: list architectures, inspect a checkpoint against one, export weights."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transferdet.cli.common import DeviceOption, PluginOption, out_console, use_plugins
from transferdet.errors import TransferdetError

app = typer.Typer(
    help="Backbone architectures and checkpoints: list, inspect, convert.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts hold literal brackets such as ARCH[@WEIGHTS]
)

NonStrictOption = Annotated[
    bool, typer.Option("--non-strict", help="Load what matches even if some backbone weights are missing.")
]


class ExportFormat(str, Enum):
    detectron2 = "detectron2"


@app.command("list")
def list_(
    pattern: Annotated[
        str | None, typer.Argument(help="Shell-style pattern (e.g. 'timm:resnet*'); plain text matches anywhere.")
    ] = None,
) -> None:
    """List the architectures a model spec can name (timm:NAME, torchvision:NAME), then torchvision's
    detection builders (a detector source: torchvision:NAME@FILE)."""
    from transferdet.cli.detector_inspect import detector_lines
    from transferdet.models.backbones import list_architectures

    names = list_architectures(pattern) + detector_lines(pattern)
    if not names:
        raise TransferdetError(f"no architecture matches {pattern!r}")
    for name in names:
        print(name)


@app.command()
def inspect(
    spec: Annotated[str, typer.Argument(help="Model spec ARCH[@WEIGHTS], e.g. timm:resnet50@moco_v2.pth.tar.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
) -> None:
    """Show the checkpoint's detected layout, how its keys matched, parameters and feature maps; for a
    detector source (torchvision:NAME@FILE, ARCH@RUN_DIR), its parts, classes and what would transfer.

    Exits with status 2, naming the unmatched keys, when the load is not clean."""
    use_plugins(plugin)
    from transferdet.cli.detector_inspect import detector_summary, print_detector
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detector_sources import read_detector_source
    from transferdet.models.specs import parse_spec

    source = read_detector_source(parse_spec(spec))
    if source is not None:  # a whole detector: its parts, classes and what would transfer
        print_detector(detector_summary(spec, source), as_json)
        return
    backbone = build_backbone(spec, strict=False)
    report = backbone.load_report
    summary = _summary(spec, backbone)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, backbone)
    if report is not None and not report.clean:
        raise TransferdetError(f"{backbone.spec.checkpoint}: load is not clean: {report.problem()}")


def _matched_groups(keys: list[str]) -> str:
    """Matched keys summarised by their module (``blocks.# (144)``: numbered children counted
    together), in checkpoint order."""
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        head = parts[0] + (".#" if len(parts) > 2 and parts[1].isdigit() else "")
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{head} ({count})" for head, count in counts.items())


def _summary(spec: str, backbone) -> dict:  # noqa: ANN001 - a Backbone
    from transferdet.models.detector_parts import simple_pyramid_levels

    report = backbone.load_report
    fixed = getattr(backbone.stages[next(iter(backbone.stages))], "fixed", None)
    return {
        "spec": spec,
        "parameters": sum(p.numel() for p in backbone.parameters()),
        "features": {
            n: {"channels": backbone.channels[n], "stride": backbone.strides[n]} for n in backbone.feature_names
        },
        "input_mean": list(backbone.mean),
        "input_std": list(backbone.std),
        "input_normalisation_from": backbone.normalisation_source,
        "checkpoint": None
        if report is None
        else {
            "layout": report.layout,
            "matched": len(report.matched),
            "missing": report.missing,
            "mismatched": [list(m) for m in report.mismatched],
            "unused": report.unused,
            "clean": report.clean,
            "matched_keys": report.matched,
        },
        "input_size": f"fixed {fixed[0]}x{fixed[1]} (images resized to it, maps resampled back)" if fixed else "any",
        "simple_pyramid": simple_pyramid_levels(backbone) if len(backbone.feature_names) == 1 else None,
    }


def _print_summary(summary: dict, backbone) -> None:  # noqa: ANN001 - a Backbone
    report = backbone.load_report
    out_console.print(f"[bold]{summary['spec']}[/bold]: {summary['parameters']:,} backbone parameters")
    table = Table(title="Feature maps")
    for column in ("name", "channels", "stride"):
        table.add_column(column)
    for name, info in summary["features"].items():
        table.add_row(name, str(info["channels"]), str(info["stride"]))
    out_console.print(table)
    mean, std = (", ".join(f"{v:g}" for v in values) for values in (backbone.mean, backbone.std))
    out_console.print(f"input normalisation: mean ({mean}), std ({std}), from {backbone.normalisation_source}")
    if report is not None:
        out_console.print(f"checkpoint layout: {report.layout}")
        out_console.print(
            f"keys: {len(report.matched)} matched, {len(report.missing)} missing, "
            f"{len(report.mismatched)} other shape, {len(report.unused)} unused in the file"
        )
        out_console.print(f"matched: {_matched_groups(report.matched)}")
    out_console.print(f"input size: {summary['input_size']}")
    if summary["simple_pyramid"]:
        levels = "; ".join(f"{lv} (stride {2 ** int(lv[1:])}): {how}" for lv, how in summary["simple_pyramid"].items())
        out_console.print(f"plain backbone: detectors put ViTDet's simple pyramid on it: {levels}")


@app.command()
def convert(
    src: Annotated[str, typer.Argument(help="Checkpoint file, or a spec ARCH@FILE naming its architecture.")],
    dst: Annotated[Path, typer.Argument(help="File to write (.pkl for detectron2).")],
    to: Annotated[ExportFormat, typer.Option("--to", help="Target format.")] = ExportFormat.detectron2,
    arch: Annotated[
        str, typer.Option(help="Architecture of a bare checkpoint file (a ResNet for detectron2).")
    ] = "torchvision:resnet50",
    non_strict: NonStrictOption = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
) -> None:
    """Export backbone weights, e.g. a MoCo/DenseCL ResNet to detectron2's .pkl layout
    (flagged for detectron2's name matching; expects RGB input with ImageNet mean/std), or a whole
    detector (torchvision:fasterrcnn_resnet50_fpn@FILE, Mask R-CNN, RetinaNet) in detectron2's names."""
    use_plugins(plugin)
    from transferdet.models.backbones import matched_weights
    from transferdet.models.detectron2_names import export_detectron2
    from transferdet.models.specs import split_spec

    spec = src if ":" in split_spec(src)[0] else f"{arch}@{src}"
    from transferdet.models.specs import parse_spec
    from transferdet.models.torchvision_detectors import export_detectron2_detector, is_torchvision_detector

    if is_torchvision_detector(parse_spec(spec)):  # a whole detector: every part in detectron2's names
        keys = export_detectron2_detector(parse_spec(spec), dst)
        out_console.print(f"wrote {dst} ({to.value}): {len(keys)} tensors of the whole detector")
        return
    tensors, report = matched_weights(spec, strict=not non_strict)
    keys = export_detectron2(tensors, dst)
    out_console.print(f"wrote {dst} ({to.value}): {len(keys)} tensors from {report.layout}")


@app.command("upgrade-run")
def upgrade_run(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder written by an older transferdet.")],
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Required. Load the run's old checkpoint with full unpickling, which runs any code the file "
            "holds, and rewrite it as data (tensors and plain types). Pass it only for a run you or someone "
            "you trust made; the old file is kept beside it (.old).",
        ),
    ] = False,
) -> None:
    """Convert an older run folder's checkpoint to the current data-only format, once, on your word.

    Every other command reads checkpoints with weights_only=True and refuses one that asks to run
    code; a run folder written before that asks for NumPy objects and is refused with this command."""
    from transferdet.runs import RunDir

    run = RunDir(run_dir)
    run.manifest()  # a folder that is not a run: one line naming the missing file
    if not trust:
        raise TransferdetError(
            f"{run.checkpoint_file}: not converted: pass --trust to load it with full unpickling (it may run code)"
        )
    run.upgrade_checkpoint()
    out_console.print(f"rewrote {run.checkpoint_file} as data (the old file: {run.checkpoint_file}.old)")


@app.command()
def pretrain(
    source: Annotated[str, typer.Option(help="Source domain: digits, letters, symbols or shapes (glyph crops).")],
    arch: Annotated[str, typer.Option(help="Architecture to pretrain, e.g. timm:resnet10t (no @weights).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Checkpoint file to write (default: the user cache, ~/.cache/transferdet/zoo/NAME.pt)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps (batches of glyph crops).")] = 200,
    batch_size: Annotated[int, typer.Option(help="Crops per step.")] = 64,
    crop_size: Annotated[int, typer.Option(help="Side of the square glyph crops, in pixels.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the crops and the initialisation.")] = 0,
    device: DeviceOption = None,
    force: Annotated[bool, typer.Option("--force", help="Pretrain again even if the checkpoint exists.")] = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
) -> None:
    """Pretrain a backbone offline by classifying glyph crops of a synthetic source domain.

    Vary the domain, architecture and steps to build a zoo of differently pretrained backbones; use
    the checkpoint as ARCH@PATH anywhere a model spec is taken. An existing checkpoint is reused.
    """
    use_plugins(plugin)
    from transferdet.cli.common import err_console, progress_bar
    from transferdet.devices import default_device
    from transferdet.zoo.pretrain import PretrainConfig, pretrain, pretrained_path, read_record

    config = PretrainConfig(
        source=source, arch=arch, steps=steps, batch_size=batch_size, crop_size=crop_size, seed=seed
    )
    path = out or pretrained_path(config)
    if path.is_file() and not force:
        record = read_record(path)
        err_console.print(f"{path}: exists, reused (pass --force to pretrain again)")
    else:
        with progress_bar() as bar:
            task = bar.add_task(f"pretraining {config.name}", total=steps)
            record = pretrain(
                config,
                path,
                default_device(device),
                lambda step, total, loss: bar.update(task, completed=step, description=f"pretraining loss {loss:.3f}"),
            )
    out_console.print(
        f"{config.arch}@{path}  ({config.source}, {config.steps} steps: "
        f"held-out crop accuracy {record['accuracy']:.3f})"
    )
