"""``transferdet rank``: score candidate backbones on a detection dataset, no fine-tuning."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from transferdet.cli.common import (
    DEVICE_HELP,
    PluginOption,
    err_console,
    out_console,
    progress_bar,
    use_plugins,
)
from transferdet.cli.data_options import AS_READ, DataArgs, data_options
from transferdet.cli.score_table import model_labels, score_tables, short_spec
from transferdet.devices import default_device
from transferdet.errors import TransferdetError
from transferdet.models.model_card import ModelEntry
from transferdet.models.specs import ModelSpec
from transferdet.ties import TIE_RTOL
from transferdet.transfer.recommended import LAYER as RECOMMENDED_LAYER

LayerOption = Annotated[
    str,
    typer.Option(
        help="Feature map(s), comma-separated, all from one forward pass: c2..c5 (c5 on a backbone without a "
        "stride-32 map, a plain ViT's one stride-16 map or SqueezeNet's, reads its deepest map); with a trained "
        "detector as weights (ARCH@RUN_DIR, a transferdet train run folder) also its FPN levels p2..p7, fpn_ms "
        "(each box from the FPN level Faster R-CNN assigns it), fc7 (a Faster R-CNN's box head) and cls_tower "
        "(FCOS's/RetinaNet's classification tower at that level); mixed with backbones, detectors rank apart on them. "
        "Variants: c5/wm64 (width-matched: the candidate's own features projected to 64 dimensions, so that "
        "wide and narrow layers compare) and pyramid/wm32 (each box from c3, c4 or c5 by FPN's level rule, or "
        "the nearest of them the backbone has; each level width-matched, scores averaged by box count)."
    ),
]
ModelsOption = Annotated[
    list[str],
    typer.Option("--models", help="Model spec ARCH[@WEIGHTS]; repeat the option or separate specs with commas."),
]
ModelsFileOption = Annotated[
    Path | None,
    typer.Option(
        help="YAML file listing models: specs, or mappings {spec, mean, std, imagenet_top1} stating the input "
        "normalisation the weights expect and the card's ImageNet top-1 (ranked as a baseline); as a mapping "
        "{models: [...], plugins: [my_net.py]} it also names the plug-ins its models need."
    ),
]
BackgroundOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Background RoIs per image, scored as one extra class 'background' (boxes of the objects' sizes, "
        "IoU < 0.3 with every object; seeded). Default: 2 on single-class data, where classification metrics "
        "would have nothing to separate, else 0.",
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="Forward-pass precision: fp32, bf16, fp16 (autocast) or auto (bf16 on GPUs that have it, else "
        "fp16; on CPUs bf16 where a probe convolution runs at least 1.3x faster in it, else fp32). Features "
        "reach the metrics in float64 either way."
    ),
]
MetricsOption = Annotated[
    list[str],
    typer.Option(
        "--metrics",
        help="Metrics to compute (repeat or comma-separate); default: every metric, then the baselines "
        "knn (5-NN accuracy, cross-validated on the boxes) and model_size (parameters). The baseline "
        "linear_probe (cross-validated logistic regression accuracy) takes seconds per model: name it to "
        "have it.",
    ),
]


RANK_HELP = """Rank backbones by transferability metrics on per-box features, in minutes, no fine-tuning.

Which ranker for which question, on the real benchmarks (docs/results.md). Across architectures:
the checkpoint card. State each model's imagenet_top1 in a --models-file (a random init is at
chance, 0.1) and the recommended line orders by the card first; over 18 sources on 5 datasets the
card reached Kendall tau 0.58 [0.44, 0.66] and no metric more than 0.23. Within one architecture
(an ImageNet checkpoint and detectors fine-tuned from it on other data): nothing measured beats a
coin. The first metric and default layer, TLogME on pyramid/wm32, are the pre-registered rule's
winner: it ordered 0.60 [0.47, 0.66] of 150 pairs right (0.53 [0.44, 0.63] with background RoIs),
where two fine-tunes of one checkpoint agreed on 0.50. Read the baselines beside it, and race
close candidates with transferdet select.
"""  # rank --help: which ranker for which question, on the real benchmarks


def _file_plugins(plugins: object, models_file: Path) -> None:
    """Import a models file's ``plugins:`` (module names, or .py files relative to the file)."""
    from transferdet.plugins import is_file, load_plugins

    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise TransferdetError(f"{models_file}: plugins: expected a list of module names or .py files")
    base = models_file.resolve().parent
    load_plugins([str(base / p) if is_file(p) and not Path(p).is_absolute() else p for p in plugins])


def _model_list(models: list[str], models_file: Path | None) -> list[str | ModelSpec]:
    """Specs from ``--models`` and the models file, whose entries may state a model card's input
    normalisation and ImageNet top-1 (:mod:`~transferdet.models.model_card`)."""
    return [entry.model_spec() if entry.card() else entry.spec for entry in _model_entries(models, models_file)]


def _model_entries(models: list[str], models_file: Path | None) -> list[ModelEntry]:
    """The listed models as entries: ``--models`` specs, then the models file's entries with their
    names and cards (a relative checkpoint path taken from the file's folder)."""
    specs = [ModelEntry(spec=spec.strip()) for value in models for spec in value.split(",") if spec.strip()]
    if models_file is not None:
        from pydantic import ValidationError

        from transferdet.data.formats.base import load_yaml

        content = load_yaml(models_file)
        if isinstance(content, dict):  # a complete config: the plug-ins its models need come with it
            _file_plugins(content.get("plugins", []), models_file)
        listed = content.get("models") if isinstance(content, dict) else content
        if not isinstance(listed, list):
            raise TransferdetError(f"{models_file}: expected a list of model specs (or 'models: [...]')")
        for index, item in enumerate(listed):
            try:
                entry = ModelEntry.model_validate(item).with_base(models_file.resolve().parent)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise TransferdetError(f"{models_file}: model {index + 1}: {where}: {first['msg']}") from None
            specs.append(entry)
    if not specs:
        raise TransferdetError("no models: give --models SPEC (repeat it, or separate specs with commas)")
    return specs


def write_scores(rows: list[dict], out: Path) -> None:
    from transferdet.atomic import atomic_write_bytes

    atomic_write_bytes(out / "scores.json", json.dumps(rows, indent=1).encode())
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["model", "layer", "features", "metric", "score", "rank", "tied", "status", "reason", "note"]
    )
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "scores.csv", buffer.getvalue().encode())


def _first_by(rows: list[dict], metric: str, layer: str) -> list[str] | None:
    """The models that share rank 1 by ``metric`` on ``layer`` (None when it scored none)."""
    firsts = [r["model"] for r in rows if r["metric"] == metric and r["layer"] == layer and r["rank"] == 1]
    return firsts or None


def _pick_text(metric: str, firsts: list[str], labels: dict[str, str]) -> str:
    names = [labels[m] for m in firsts]
    return f"{metric} picks {names[0]}" if len(names) == 1 else f"{metric} ties {' and '.join(names)}"


def _card_first(rows: list[dict], lead: str, layer: str) -> list[str] | None:
    """The models first by the combined ranker (:mod:`~transferdet.transfer.combined`: the card's
    ImageNet top-1 across architectures, ``lead`` among equal top-1), or None where it says nothing
    more than ``lead``: a model scored by ``lead`` states no top-1, or all state the same one."""
    from transferdet.transfer.combined import card_then_metric
    from transferdet.transfer.rank import IMAGENET_TOP1

    on_layer = [r for r in rows if r["layer"] == layer and r["score"] is not None]
    metric = {r["model"]: r["score"] for r in on_layer if r["metric"] == lead}
    top1 = {r["model"]: r["score"] for r in on_layer if r["metric"] == IMAGENET_TOP1}
    if any(m not in top1 for m in metric) or len({top1[m] for m in metric}) < 2:
        return None
    combined = card_then_metric(top1, metric)
    return [m for m in metric if combined[m] == max(combined.values())]


def recommended_line(
    rows: list[dict], specs: list[str], wanted: list[str], labels: dict[str, str] | None = None
) -> str | None:
    """The model the first metric asked for ranks first (on the first layer), with what the
    baselines pick beside it; where every model states a top-1 and they differ, the combined ranker
    decides (the card's top-1 first, the metric among equal top-1: the shelf benchmark's rule,
    benchmarks/real/README.md). A tie for first is said as one, never as a pick. Models go by the
    table's labels, the pick also by its spec."""
    from transferdet.transfer.rank import BASELINES

    if len(specs) < 2 or not rows:
        return None
    labels = labels or model_labels(specs)[0]
    layer = rows[0]["layer"]
    lead = next((m for m in wanted if m not in BASELINES and _first_by(rows, m, layer)), None)
    if lead is None:
        return None
    firsts, how = _first_by(rows, lead, layer), f"{lead} on {layer}"
    if (carded := _card_first(rows, lead, layer)) is not None:
        firsts, how = carded, f"the card's ImageNet top-1, then {how} among equal top-1"
    picks = [_pick_text(m, f, labels) for m in BASELINES if m in wanted and (f := _first_by(rows, m, layer))]
    tail = f"; {'; '.join(picks)})" if picks else ")"
    if len(firsts) == 1:
        spec = short_spec(firsts[0])
        named = spec if labels[firsts[0]] == spec else f"{labels[firsts[0]]} = {spec}"
        return f"recommended: {named} (first by {how}" + tail
    tie = f"{' and '.join(labels[m] for m in firsts)} tie for first by {how} (within {TIE_RTOL:g})"
    return "recommended: no single pick: " + tie + tail + "; transferdet select races them on your data"


def _show(rows: list[dict], specs: list[str], wanted: list[str], out: Path | None, as_json: bool) -> None:
    if out is not None:
        write_scores(rows, out)
    if as_json:
        print(json.dumps(rows))
        return
    tables, legend, labels = score_tables(rows, specs, wanted, out_console.width)
    for table in tables:
        out_console.print(table)
    for line in legend:
        out_console.print(line, overflow="fold")
    for row in rows:
        if row["reason"]:
            where = f" ({row['layer']})" if len({r["layer"] for r in rows}) > 1 else ""
            out_console.print(f"[dim]*[/dim] {short_spec(row['model'])}{where}: {row['reason']}")
    for note in dict.fromkeys(r["note"] for r in rows if r["note"]):
        err_console.print(f"warning: {note}")
    for layer in dict.fromkeys(r["layer"] for r in rows):
        have = {r["model"] for r in rows if r["layer"] == layer}
        if len(have) < len(specs):  # a detector's own tap: backbones have none
            out_console.print(f"{layer}: a detector's tap, ranked among the {len(have)} detector source(s) only")
    recommended = recommended_line(rows, specs, wanted, labels)
    if recommended:
        out_console.print(recommended)
    missing = [m for m in ("leep", "nce") if m in wanted and not any(r["metric"] == m for r in rows)]
    if missing:
        err_console.print(f"{', '.join(missing)}: unavailable for models without a linear ImageNet-style classifier")
    if out is not None:
        out_console.print(f"wrote {out / 'scores.csv'} and {out / 'scores.json'}")


@data_options
def rank(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset (folder or annotation file).")],
    models: ModelsOption = [],  # noqa: B006 - typer reads the default
    models_file: ModelsFileOption = None,
    metrics: MetricsOption = [],  # noqa: B006
    layer: LayerOption = RECOMMENDED_LAYER,
    features: Annotated[str, typer.Option(help="local: RoI-Align on each box; global: whole image.")] = "local",
    max_images: Annotated[int | None, typer.Option(help="Use at most this many images (seeded).")] = None,
    max_boxes_per_class: Annotated[int | None, typer.Option(help="Use at most this many boxes per class.")] = None,
    image_size: Annotated[int, typer.Option(help="Longer image side, in pixels, for the forward pass.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed for sampling, random-init weights and splits.")] = 0,
    device: Annotated[
        str | None,
        typer.Option(help=f"{DEVICE_HELP} The forward passes and the metrics' passes over the features run there."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    background: BackgroundOption = None,
    precision: PrecisionOption = "fp32",
    out: Annotated[Path | None, typer.Option(help="Folder for scores.csv and scores.json.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Feature cache folder (default: user cache).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write cached features.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON list on stdout.")] = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
    data_args: DataArgs = AS_READ,
) -> None:
    """Rank backbones by transferability metrics on per-box features, in minutes, no fine-tuning."""
    use_plugins(plugin)
    from transferdet.transfer import cache
    from transferdet.transfer.rank import DEFAULT_SCORES, RankSettings
    from transferdet.transfer.rank import rank as rank_models

    specs = _model_list(models, models_file)
    wanted = [m for value in metrics for m in value.split(",") if m.strip()] or list(DEFAULT_SCORES)
    settings = RankSettings(layer, features, image_size, max_images, max_boxes_per_class, seed, batch_size,
                            default_device(device), background, precision, data_args.on_bad_box,
                            data_args.split_seed)  # fmt: skip
    folder = None if no_cache else (cache_dir or cache.default_cache_dir())
    with progress_bar(transient=True) as bar:
        tasks: dict[str, int] = {}

        def report(spec: str, done: int, total: int) -> None:
            if spec not in tasks:
                tasks[spec] = bar.add_task(f"features {spec}", total=total)
            bar.update(tasks[spec], completed=done)

        rows = rank_models(data, specs, wanted, data_args.split, settings, data_args.format, data_args.read, folder,
                           report)  # fmt: skip
    _show(rows, [str(s) for s in specs], wanted, out, as_json)
