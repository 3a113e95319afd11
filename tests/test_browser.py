"""The pages a user opens, in a real browser (Debian's headless ``chromium``; ``.ci/run`` installs it
where it can, and these tests skip saying why where it is missing): the benchmark report, rebuilt from
the committed eight-source store, and a race page. No console message, every image loads (natural
width above zero), and the answer (the report's summary, the race's pick) is on the first screen at
1280 x 800."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "real" / "out" / "results.sqlite"
SCREEN = (1280, 800)
PROBE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="{page}" style="width:{w}px;height:{h}px;border:0"></iframe><pre id="out">pending</pre>
<script>
document.getElementById('page').onload = function () {{
  var d = this.contentDocument, answer = d.querySelector('{answer}');
  document.getElementById('out').textContent = JSON.stringify({{
    images: Array.from(d.images).map(function (i) {{ return i.naturalWidth; }}),
    answer: answer ? answer.getBoundingClientRect().bottom : null, title: d.title}});
}};
</script></body></html>"""


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium here (Debian's chromium package; .ci/run installs it where apt can)")
    return found


def _open(page: Path, answer: str, tmp: Path) -> tuple[dict, list[str]]:
    """What the page shows in the browser: each image's natural width, the answer's bottom edge (px), and
    the console messages it logged."""
    probe = tmp / "probe.html"
    probe.write_text(PROBE.format(page=page.as_uri(), w=SCREEN[0], h=SCREEN[1], answer=answer), encoding="utf-8")
    run = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r'<pre id="out">([^<]*)</pre>', run.stdout)
    assert found is not None and found.group(1) != "pending", run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line and page.name in line]
    return json.loads(found.group(1).replace("&quot;", '"')), console


def _screenshot(page: Path, out: Path) -> None:
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={SCREEN[0]},{SCREEN[1]}", f"--screenshot={out}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip


def test_the_report_opens_with_its_summary_and_every_image_loads(tmp_path: Path) -> None:
    from transferdet.bench.report import build_report
    from transferdet.bench.report_data import load_report_data

    _browser()
    if not STORE.is_file():
        pytest.skip(f"{STORE} is not here")
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(STORE, bench / "results.sqlite")
    _, page = build_report(bench, load_report_data(bench, replicates=50))  # the page, not its intervals' precision
    shown, console = _open(page, "#summary", tmp_path)
    assert console == []
    assert len(shown["images"]) >= 5 and min(shown["images"]) > 0
    assert shown["answer"] is not None and 0 < shown["answer"] <= SCREEN[1]
    _screenshot(page, tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_race_page_opens_with_the_pick_and_every_image_loads(tmp_path: Path) -> None:
    from transferdet.select.costs import write_pareto
    from transferdet.select.curves import write_curves
    from transferdet.select.race_page import write_race_page

    _browser()
    summary = _race_summary()
    summary["curves"] = str(write_curves(summary, tmp_path / "race.png"))
    summary["pareto"] = str(write_pareto(summary, tmp_path / "pareto.png"))
    page = write_race_page(summary, tmp_path)
    shown, console = _open(page, "p", tmp_path)
    assert console == [] and shown["images"] and min(shown["images"]) > 0
    assert shown["answer"] is not None and 0 < shown["answer"] <= SCREEN[1]
    assert "pick: lite2-imagenet" in page.read_text(encoding="utf-8")


def _race_summary() -> dict:
    """A race as race.json keeps it (chess_pieces' numbers from the README's example)."""
    rows = []
    for name, rungs, stopped, latency in (
        ("lite2-imagenet", {"46": 0.381, "138": 0.706}, "winner", 41.0),
        ("lite0-imagenet", {"46": 0.289, "138": 0.671}, "rung 138", 30.2),
        ("mnv2-imagenet", {"46": 0.267}, "rung 46", 24.9),
    ):  # fmt: skip
        rows.append({"model": name, "screen": {"imagenet_top1": 75.0}, "rungs": rungs, "stopped": stopped,
                     "latency_ms": latency, "latency_iqr_ms": [latency - 1, latency + 1], "params": 4e6,
                     "flops": 3e9, "device": "cpu: test", "threads": 2, "runs": 30})  # fmt: skip
    noise = {"tolerance_option": 0.0, "sd_seed": 0.0414, "seed_source": "shipped", "se_multiple": 2.0,
             "image": "paired bootstrap"}  # fmt: skip
    return {"winner": "lite2-imagenet", "winner_run": "select-chess/00-lite2-imagenet", "final": {"AP50": 0.874},
            "plan": {"rungs": [46, 138], "survivors": [3, 1], "eta": 3, "total": 404},
            "cost": {"iterations": 726, "fraction_of_all": 0.3, "planned": 726}, "race": "halving", "noise": noise,
            "tolerance": {"value": 0.083, "per_candidate": {}}, "tied": ["lite2-imagenet"], "stop": "last rung",
            "spent": 726, "saved": 0, "target": "AP50", "budget": 0.3, "seed": 0, "candidates": rows,
            "inference": {"batch": 1, "threads": 2, "flops": "a multiply-add counts 2"}}  # fmt: skip
