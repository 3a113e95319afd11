"""``transferdet select``: which backbone to fine-tune. Rank every candidate, race the best ones
with short runs of the real recipe on a validation split, finish the winner's run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from transferdet.cli.common import DEVICE_HELP, PluginOption, err_console, out_console, use_plugins
from transferdet.cli.data_options import AS_READ, DataArgs, data_options
from transferdet.cli.rank_command import ModelsFileOption, ModelsOption, _model_entries
from transferdet.cli.train_commands import SetOption
from transferdet.devices import default_device
from transferdet.errors import TransferdetError

BudgetOption = Annotated[
    float,
    typer.Option(
        help="Iterations the race trains, the winner's completion included, as a fraction of fine-tuning every "
        "candidate in full."
    ),
]
MinRungOption = Annotated[
    int | None,
    typer.Option(
        help="Shortest first rung, in iterations: where the budget cannot afford it for every candidate, the race "
        "takes the best screened that it can (the others are left out, said so). Default: 0.3 of the recipe's "
        "warmup (15 iterations in quick), where validation AP50 began to order real sources as their full "
        "fine-tunes do (docs/results.md)."
    ),
]
ExecutorOption = Annotated[
    str, typer.Option(help="Where the rungs' runs train: local (one by one) or ray (side by side).")
]
AddressOption = Annotated[
    str | None, typer.Option(help="Address of an existing Ray cluster (default: start a local Ray instance).")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        help="Torch and BLAS threads per rung's run (default: torch's, all cores, when local; one per Ray task). "
        "A seeded race repeats bit for bit on a like CPU at the same thread count."
    ),
]
RaceOption = Annotated[
    str,
    typer.Option(
        help="halving: plain successive halving, its pick reported with the candidates tied with it. tolerant: a "
        "rung eliminates only candidates that trail the leader by more than the tolerance, and the race stops when "
        "more are tied than the next rung keeps (pre-registered and replayed, docs/results.md)."
    ),
]
ToleranceOption = Annotated[
    float,
    typer.Option(
        help="AP50 difference below which candidates tie, whatever the noise. The race judges by the larger of it "
        "and 2 standard errors of a paired difference (seed noise, shipped or --replicates, and image noise)."
    ),
]
PreferOption = Annotated[
    str, typer.Option(help="A tie's pick (--race tolerant): card (the screen's order), speed (latency) or size.")
]
ReplicatesOption = Annotated[
    int | None,
    typer.Option(
        help="Measure the seed noise on this data (--race tolerant): train the first rung's top two again with K "
        "other seeds. Default: the noise measured on the benchmark stores, shipped."
    ),
]


def _check_specs(specs: list[str]) -> None:
    """An unknown architecture is a one-line error before anything runs (decided on the meta device)."""
    from transferdet.models.adapters import backbone_path
    from transferdet.models.specs import parse_spec

    for spec in specs:
        try:
            backbone_path(parse_spec(spec))
        except TransferdetError:
            raise
        except Exception as error:  # noqa: BLE001 - timm and torchvision name unknown models in many ways
            raise TransferdetError(f"{spec}: not a model this can build ({type(error).__name__}: {error})") from None


def _checked(entries: list, target: str, executor: str) -> list[str]:
    """The candidates' names, once the candidates, --target and --executor are known good (one-line errors)."""
    _check_specs([e.spec for e in entries])
    names = [e.name for e in entries]
    if len(set(names)) < len(names):
        raise TransferdetError(f"two candidates share a name: {sorted({n for n in names if names.count(n) > 1})}")
    if target not in ("AP50", "AP"):
        raise TransferdetError(f"--target {target!r}: choose AP50 or AP")
    if executor not in ("local", "ray"):
        raise TransferdetError(f"--executor {executor!r}: choose local or ray")
    return names


def _announce(plan, dropped: list[str], noise) -> None:  # noqa: ANN001 - a Plan, a Noise
    """The race's plan, its cost and the tolerance it judges by, before any training."""
    floor = max(noise.tolerance, 2 * noise.sd_seed)
    err_console.print(
        f"racing {plan.candidates} candidates: rungs at iterations {', '.join(map(str, plan.rungs))} of "
        f"{plan.total}, {plan.cost} iterations ({plan.fraction:.2f} of fine-tuning all); tolerance at least "
        f"±{floor:.3f} AP50 ({'--tolerance' if noise.tolerance >= 2 * noise.sd_seed else 'seed noise'}; a pair's "
        "image noise adds to it)"
    )
    if dropped:
        err_console.print(f"left out by the screen (the budget races {plan.candidates}): {', '.join(dropped)}")


class RungBars:
    """Progress bars, one per rung: its candidates trained to it (a rung answered from the store shows none)."""

    def __init__(self, bar: Progress) -> None:
        self.bar, self.tasks, self.entering = bar, {}, {}

    def announce(self, plan, dropped: list[str], noise) -> None:  # noqa: ANN001 - a Plan, a Noise
        _announce(plan, dropped, noise)
        self.entering = dict(zip(plan.rungs, plan.survivors, strict=True))

    def on_job(self, event: str, job, detail: str) -> None:  # noqa: ANN001 - a bench Job
        stop = job.definition["stop_at"]
        if stop not in self.tasks:
            label = "finishing the winner's run" if stop is None else f"rung at iteration {stop}"
            self.tasks[stop] = self.bar.add_task(label, total=self.entering.get(stop, 1))
        if event == "lost":
            err_console.print(f"[yellow]will retry[/]: {job.model}: {detail}")
        elif event in ("done", "failed"):
            self.bar.advance(self.tasks[stop])
            if event == "failed":
                err_console.print(f"[red]failed[/]: {job.model} (it leaves the race): {detail}")


def _table(summary: dict) -> Table:
    from transferdet.select.race_page import race_rows

    header, rows = race_rows(summary)
    table = Table(title=f"select: validation {summary['target']} at each rung")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


@data_options
def select(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset (folder or annotation file).")],
    models: ModelsOption = [],  # noqa: B006 - typer reads the default
    models_file: ModelsFileOption = None,
    out: Annotated[Path, typer.Option(help="Folder for the candidates' runs and race.json.")] = Path("select"),
    recipe: Annotated[str, typer.Option(help="Training recipe every candidate is raced under.")] = "quick",
    overrides: SetOption = [],  # noqa: B006 - typer reads the default
    detector: Annotated[str, typer.Option(help="Detector family.")] = "fcos",
    budget: BudgetOption = 0.3,
    eta: Annotated[int, typer.Option(help="Keep the best 1/eta at each rung.")] = 3,
    min_first_rung: MinRungOption = None,
    target: Annotated[str, typer.Option(help="Validation metric the race compares (AP50 or AP).")] = "AP50",
    seed: Annotated[int, typer.Option(help="Seed for the validation split, data order and initialisation.")] = 0,
    screen_images: Annotated[int, typer.Option(help="Images the screen (rank) scores on, at most.")] = 200,
    image_size: Annotated[int, typer.Option(help="Longer image side for the screen's forward passes.")] = 512,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP)] = None,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    threads: ThreadsOption = None,
    race: RaceOption = "halving",
    tolerance: ToleranceOption = 0.0,
    prefer: PreferOption = "card",
    replicates: ReplicatesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the race's summary as JSON on stdout.")] = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
    data_args: DataArgs = AS_READ,
) -> None:
    """Which backbone should I use? Rank the candidates, race the best ones with short runs of the
    recipe (successive halving on a validation split carved from the training images), and finish
    the winner's run: its folder is ready for eval, predict and zoo convert."""
    use_plugins(plugin)
    from transferdet.select.flow import SelectSettings
    from transferdet.select.flow import select as run_select
    from transferdet.select.runner import store_trainer
    from transferdet.train.recipes import load_recipe
    from transferdet.transfer.rank import RankSettings

    entries = _model_entries(models, models_file)
    names = _checked(entries, target, executor)
    resolved = default_device(device)
    screen = RankSettings(image_size=image_size, max_images=screen_images, seed=seed, device=resolved,
                          on_bad_box=data_args.on_bad_box, split_seed=data_args.split_seed)  # fmt: skip
    settings = SelectSettings(load_recipe(recipe, overrides), detector, budget, eta, min_first_rung, target, seed,
                              resolved, screen, executor, address, threads, data_args=data_args,
                              plugins=list(plugin), entries={e.name: e for e in entries}, race=race,
                              tolerance=tolerance, prefer=prefer, replicates=replicates)  # fmt: skip
    with Progress(console=err_console, transient=True) as bar:
        bars = RungBars(bar)
        summary = run_select(data, names, settings, out, announce=bars.announce, on_job=bars.on_job,
                             trainer=store_trainer, on_tie=_on_tie)  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        _show(summary)


def _on_tie(tied: list[str], tolerance: float, rung: int) -> None:
    """The tie-stop, said when it happens (before the pick's run is finished)."""
    err_console.print(f"tied within ±{tolerance:.3f} AP50 at iteration {rung}: {', '.join(tied)}; finishing {tied[0]}")


def _show(summary: dict) -> None:
    """The race's table, the pick line and its tie or noise statement."""
    from transferdet.select.race_page import pick_line, tie_line

    out_console.print(_table(summary))
    out_console.print(pick_line(summary))
    out_console.print(tie_line(summary))
    out_console.print(f"race: {summary['page']} (and race.json, race.png)")
