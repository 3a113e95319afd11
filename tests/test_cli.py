"""The command line: every option explained, the version, the demo end to end (on a toy scale)."""

from __future__ import annotations

import typer

from transferdet.cli import app


def all_commands(command, path: tuple[str, ...] = ()):
    """Typer ships its own copy of click, so groups are recognised by their ``commands``."""
    yield path, command
    if getattr(command, "commands", None):
        for name, sub in command.commands.items():
            yield from all_commands(sub, (*path, name))


def test_every_command_and_option_has_help(cli):
    root = typer.main.get_command(app)
    commands = list(all_commands(root))
    assert {" ".join(p) for p, _ in commands} >= {
        "data info",
        "data convert",
        "data synth",
        "data subsample",
        "data show",
        "demo",
    }
    for path, command in commands:
        assert command.help or command.short_help, f"{path} has no help"
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"transferdet {' '.join(path)} {param.opts[0]} has no help"
        result = cli(*path, "--help")
        assert result.code == 0 and "Usage" in result.out


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("transferdet ")


def test_demo_runs_every_stage_and_reuses_its_work(cli, tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.setenv("TRANSFERDET_CACHE", str(tmp_path / "cache"))
    result = cli("demo", "--out", tmp_path / "demo", "--smoke", "--device", "cpu")
    assert result.code == 0, result.err
    demo = tmp_path / "demo"
    assert (demo / "data.png").stat().st_size > 1000
    assert len(list((tmp_path / "cache" / "zoo").glob("*.pt"))) == 4  # the pretrained zoo members
    with sqlite3.connect(demo / "results.sqlite") as db:
        statuses = db.execute("SELECT kind, status, completions FROM jobs").fetchall()
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM ap")}
    assert sorted(statuses) == sorted([("rank", "done", 1)] * 6 + [("train", "done", 1)] * 6)
    assert len(models) == 6
    assert "Summary (90% bootstrap intervals)" in result.out  # the answer last, then where the report is
    assert (
        result.out.strip().splitlines()[-1] == f"full report: {demo / 'report.html'} (and report.md, correlations.csv)"
    )
    assert "<img" in (demo / "report.html").read_text()
    again = cli("demo", "--out", demo, "--smoke", "--device", "cpu")
    assert again.code == 0 and "(0 jobs run, 12 reused)" in again.out


def test_help_keeps_literal_brackets(cli):
    """Help texts are not parsed as rich markup, which would eat ``[@WEIGHTS]``."""
    for command in (("train",), ("zoo", "inspect"), ("rank",)):
        assert "ARCH[@WEIGHTS]" in cli(*command, "--help").out, command
