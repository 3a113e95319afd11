"""The data options every dataset-reading command takes, defined once: ``--format``, ``--split``,
``--images``, ``--annotations``, ``--csv-columns``, ``--class-name``, ``--on-bad-box`` and
``--split-seed``, with one name, default and help each. :func:`data_options` adds them to a command
and hands it one :class:`DataArgs`."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from transferdet.cli.common import (
    AnnotationsOption,
    BadBox,
    BadBoxOption,
    ClassNameOption,
    CsvColumnsOption,
    FormatOption,
    ImagesOption,
    InputFormat,
    read_options,
)
from transferdet.data.options import DataArgs

SplitOption = Annotated[
    str | None,
    typer.Option(
        help="Split(s) to read, several joined with '+' (default: the command's own: every split for data info, "
        "show and convert; the training split for rank, train and select; the held-out one for eval)."
    ),
]
SplitSeedOption = Annotated[
    int | None,
    typer.Option(
        "--split-seed",
        help="Seed of the 80/20 train/test split made for data without splits, and of a validation split carved "
        "from the training images (default: --seed where the command has one, else 0).",
    ),
]
# name -> (annotation, default), in the order --help lists them
OPTIONS: dict[str, tuple[Any, Any]] = {
    "format": (FormatOption, InputFormat.auto),
    "split": (SplitOption, None),
    "images": (ImagesOption, None),
    "annotations": (AnnotationsOption, None),
    "csv_columns": (CsvColumnsOption, None),
    "class_name": (ClassNameOption, "object"),
    "on_bad_box": (BadBoxOption, BadBox.drop),
    "split_seed": (SplitSeedOption, None),
}


AS_READ = DataArgs()  # the defaults: what a decorated command's own ``data_args`` default stands for


def _args(values: dict[str, Any]) -> DataArgs:
    read = read_options(values["images"], values["annotations"], values["csv_columns"], values["class_name"])
    return DataArgs(values["format"].value, values["split"], read, values["on_bad_box"].value, values["split_seed"])


def data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the data options added to its signature (before ``--plugin``, else last); it is
    called with ``data=DataArgs`` in their place (its own parameter ``data_args``)."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in inspect.signature(command).parameters.values()
           if p.name != "data_args"]  # fmt: skip
    ours = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
            for name, (annotation, default) in OPTIONS.items()]  # fmt: skip
    at = next((i for i, p in enumerate(own) if p.name == "plugin"), len(own))
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at:]]
    parameters = [*own[:at], *ours, *keyword]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, default) for name, (_, default) in OPTIONS.items()}
        return command(*args, **kwargs, data_args=_args(values))

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper
