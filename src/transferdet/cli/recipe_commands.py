"""``transferdet recipe list`` and ``transferdet recipe show NAME``: the named protocols and the
schedule each runs once scaled to a batch and a number of processes."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from transferdet.cli.common import out_console

app = typer.Typer(help="The named training protocols (docs/protocols.md pins each against its source).")


@app.command("list")
def list_recipes() -> None:
    """The named recipes, with what each is for."""
    from transferdet.train.recipes import RECIPES, load_recipe

    table = Table(title="Recipes (transferdet recipe show NAME for the effective schedule)")
    for column in ("name", "detector", "length", "description"):
        table.add_column(column, overflow="fold")
    for name in RECIPES:
        recipe = load_recipe(name)
        length = f"{recipe.iterations} it" if recipe.iterations else f"{recipe.epochs:g} ep"
        table.add_row(name, recipe.detector or "any", length, recipe.description)
    out_console.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="A recipe name (transferdet recipe list).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a recipe key: key=value (repeat).")] = [],  # noqa: B006
    world_size: Annotated[int, typer.Option(min=1, help="Processes (torchrun --nproc_per_node x nodes).")] = 1,
    images: Annotated[
        int | None, typer.Option(min=1, help="Training images, to count an epoch-based recipe's iterations.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedule as one JSON object.")] = False,
) -> None:
    """The effective schedule: iterations, lr at each step after linear scaling to the total batch,
    warmup, what is frozen, norm layers, anchors and image sizes."""
    from transferdet.train.recipe_view import effective_schedule
    from transferdet.train.recipes import load_recipe

    view = effective_schedule(load_recipe(name, set_), world_size, images)
    if as_json:
        print(json.dumps(view))
        return
    table = Table(title=f"recipe {name}, {world_size} process{'es' if world_size > 1 else ''}", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in view.items():
        table.add_row(key.replace("_", " "), str(value))
    out_console.print(table)
