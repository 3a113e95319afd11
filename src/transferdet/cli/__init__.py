"""The ``transferdet`` command line: one entry point, a group per stage of the product."""

from __future__ import annotations

import sys
import warnings

import typer

from transferdet import __version__
from transferdet.cli.bench_commands import bench, report
from transferdet.cli.data_commands import app as data_app
from transferdet.cli.demo import demo
from transferdet.cli.distill_commands import app as distill_app
from transferdet.cli.rank_command import RANK_HELP, rank
from transferdet.cli.recipe_commands import app as recipe_app
from transferdet.cli.select_command import select
from transferdet.cli.train_commands import eval_, predict, train
from transferdet.cli.zoo_commands import app as zoo_app
from transferdet.errors import TransferdetError

app = typer.Typer(
    name="transferdet",
    help="Choose the pretrained backbone to fine-tune on your detection data: rank backbones in "
    "minutes, fine-tune and evaluate them with reproducible protocols, validate the ranking.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts hold literal brackets such as ARCH[@WEIGHTS]
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")
app.add_typer(distill_app, name="distill")
app.add_typer(recipe_app, name="recipe")
app.command(help=RANK_HELP)(rank)
app.command()(select)
app.command()(train)
app.command("eval")(eval_)
app.command()(predict)
app.command()(bench)
app.command()(report)
app.command()(demo)


def _version(value: bool) -> None:
    if value:
        print(f"transferdet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    plugin: list[str] = typer.Option(  # noqa: B008 - typer reads the default
        [],
        "--plugin",
        help="Import a module or .py file first (repeatable), e.g. one that registers a timm model, so that "
        "timm:NAME works in the command: transferdet --plugin my_net.py train --backbone timm:my_net ...",
    ),
) -> None:
    """transferdet: which backbone to fine-tune on your detection data."""
    if plugin:
        from transferdet.plugins import load_plugins

        load_plugins(plugin)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(f"warning: {message}\n")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a user error is one line on stderr and exit status 2, never a traceback."""
    warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="transferdet")
    except TransferdetError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
