"""``transferdet bench`` and ``transferdet report``: validate rankings against fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from transferdet.bench.report_data import ReportData
from transferdet.bench.store import Job
from transferdet.cli.common import err_console, out_console, progress_bar

CONFIG_HELP = """CONFIG.yaml keys: datasets (paths, or {name, path, format}), models (specs, or {name, spec,
mean, std, imagenet_top1}: the input normalisation the weights expect and the card's top-1, ranked as
a baseline), detector, recipe, recipe_overrides, trials, seed, metrics, layers (all from one forward
pass), features, image_size, max_images, max_boxes_per_class, background (RoIs per image as an extra
class; default 2 on single-class data; a list ranks with each, kept apart as local+bgN), precision
(of the ranking forward passes: fp32, bf16, fp16 or auto), target (AP, AP50 or AP75), threads_per_job
(torch and BLAS threads per job; on Ray also the CPUs each job reserves), shelf ({start_from: {key: model
name}, datasets: [names], folder}: intermediate-task sources the bench fine-tunes itself, each a
source for every dataset but its own). Relative paths are taken from the config file's folder."""


def print_summary(data: ReportData, page: Path) -> None:
    """The report's summary, last on the console, with where the full report is (its tables stay there)."""
    from transferdet.bench.report_summary import summary_lines

    out_console.print("[bold]Summary[/] (90% bootstrap intervals)")
    for line in summary_lines(data):
        out_console.print(f"- {line}")
    out_console.print(f"full report: {page} (and report.md, correlations.csv)")


def job_progress(bar: Progress, task: TaskID):  # noqa: ANN201
    """A runner callback that shows the running job on ``bar`` and prints failures."""

    def on_job(event: str, job: Job, detail: str) -> None:
        if event in ("start", "retry"):
            verbs = {"rank": "ranking", "source": "training shelf source", "select": "racing"}
            verb = verbs.get(job.kind, "fine-tuning")
            label = "seed" if job.kind == "select" else "trial"
            where = f"{job.layer}, " if job.layer else "" if job.trial is None else f"{label} {job.trial}, "
            again = f", {detail}" if event == "retry" else ""
            bar.update(task, description=f"{verb} {job.model} ({where}{job.dataset}{again})")
        elif event == "lost":  # to be run again
            err_console.print(f"[yellow]will retry[/]: {job.kind} {job.model} on {job.dataset}: {detail}")
        else:
            bar.advance(task)
            if event == "failed":
                err_console.print(f"[red]failed[/]: {job.kind} {job.model} on {job.dataset}: {detail}")

    return on_job


def show_select_report(out: Path, reference: Path) -> None:
    """A benchmark of select: the regret table (written with its CSV, JSON and figure)."""
    from transferdet.bench.regret import RACE
    from transferdet.bench.select_report import write_select_report

    rows = write_select_report(out, reference)
    table = Table(title="select: regret in test AP50 (best source minus pick), 90% intervals")
    for name in ("budget", "picker", "races", "cost", "regret", "race minus this"):
        table.add_column(name, justify="left" if name == "picker" else "right")
    for r in rows:
        gap = r.race_minus_this
        cells = [f"{r.regret.value:.3f} [{r.regret.low:.3f}, {r.regret.high:.3f}]",
                 "" if gap is None else f"{gap.value:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]"]  # fmt: skip
        table.add_row(f"{r.budget:g}", r.picker, str(r.races), f"{r.cost:.2f}", *cells,
                      style="bold" if r.picker == RACE else "")  # fmt: skip
    out_console.print(table)
    out_console.print(f"written: {out / 'select_regret.csv'}, select_regret.json, regret.png, early_rungs.csv/png")


def _tell_provenance(outcome) -> None:  # noqa: ANN001 - a BenchOutcome
    """Say which code versions made the store's results, and any shelf source rebuilt differently."""
    for kind, versions in outcome.code_versions.items():
        if len(versions) > 1:
            listed = ", ".join(f"{code[:12]} ({count})" for code, count in versions.items())
            err_console.print(f"note: the store's {kind} jobs come from {len(versions)} code versions: {listed}")
    for name in outcome.changed_sources:
        err_console.print(
            f"[yellow]warning[/]: shelf source {name} was rebuilt with other weights than the store's jobs used"
        )


def bench(
    config: Annotated[Path, typer.Argument(help="The benchmark's CONFIG.yaml (see below).", metavar="CONFIG.yaml")],
    out: Annotated[Path, typer.Option(help="Folder for the store (results.sqlite), runs and report.")],
    executor: Annotated[str, typer.Option(help="Where jobs run: local (this process, one by one) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Address of an existing Ray cluster (default: start a local Ray instance).")
    ] = None,
    device: Annotated[
        str, typer.Option(help="Device for every job: auto (cuda where a GPU is), cpu or cuda.")
    ] = "auto",
    kinds: Annotated[
        str,
        typer.Option(
            help="Job kinds to run now, comma-separated: source (shelf sources), rank, train, select (races of "
            "a config's select section). Shelf sources whose run folder is missing always run (the other jobs "
            "need them)."
        ),
    ] = "source,rank,train,select",
) -> None:
    """Rank every model on every dataset and fine-tune each, store all results in OUT/results.sqlite,
    and write the report. Re-running runs only what is missing (jobs not yet done, failed or killed).
    """
    from transferdet.bench.config import load_config
    from transferdet.bench.report import build_report, load_report_data
    from transferdet.bench.runner import jobs_to_run, run_bench
    from transferdet.job_kinds import ALL

    settings = load_config(config)
    wanted = tuple(k.strip() for k in kinds.split(",") if k.strip())
    with progress_bar() as bar:
        task = bar.add_task("bench jobs", total=jobs_to_run(settings, out, device, wanted, ALL))
        on_job = job_progress(bar, task)
        outcome = run_bench(settings, out, executor, address, device, on_job, wanted, ALL)
    err_console.print(
        f"{outcome.planned} jobs: {outcome.skipped} done or left for later, {outcome.ran} run now, "
        f"{len(outcome.failed)} failed"
    )
    _tell_provenance(outcome)
    if settings.select is not None:
        show_select_report(out, settings.select.reference)
    else:
        data = load_report_data(out)  # once: its bootstrap takes seconds
        _, page = build_report(out, data)
        err_console.print(f"store: {out / 'results.sqlite'}")
        print_summary(data, page)
    if outcome.failed:
        raise typer.Exit(1)


bench.__doc__ = (bench.__doc__ or "") + "\n\n" + CONFIG_HELP


def report(
    bench_dir: Annotated[Path, typer.Argument(help="A bench output folder (holding results.sqlite).", metavar="DIR")],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="A benchmark of select: the folder of the store whose fine-tunes give the regret "
            "(default: the one its config named)."
        ),
    ] = None,  # fmt: skip
) -> None:
    """Rebuild DIR/report.md, DIR/report.html and the CSV files from the store alone (a benchmark
    of select: its regret table, CSV, JSON and figure)."""
    from transferdet.bench.report import build_report, load_report_data
    from transferdet.bench.store import STORE_FILE, Store

    select = None
    if (bench_dir / STORE_FILE).exists():  # (a missing store is load_report_data's error to tell)
        with Store(bench_dir / STORE_FILE) as store:
            select = (store.meta("config") or {}).get("select")
    if select:
        show_select_report(bench_dir, reference or Path(select["reference"]))
        return
    data = load_report_data(bench_dir)
    _, page = build_report(bench_dir, data)
    print_summary(data, page)
