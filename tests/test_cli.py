"""The command line: every option explained, the version, the demo's promise so far."""

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


def test_demo_makes_a_dataset_and_a_picture(cli, tmp_path):
    result = cli("demo", "--out", tmp_path / "demo", "--images", 20)
    assert result.code == 0, result.err
    assert (tmp_path / "demo" / "data.png").stat().st_size > 1000
    assert "Boxes per class" in result.out


def test_help_keeps_literal_brackets(cli):
    """Help texts are not parsed as rich markup, which would eat ``[@WEIGHTS]``."""
    for command in (("train",), ("zoo", "inspect"), ("rank",)):
        assert "ARCH[@WEIGHTS]" in cli(*command, "--help").out, command
