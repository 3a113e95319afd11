"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path


class TransferdetError(Exception):
    """An error caused by the user's input or environment, not by a bug in transferdet."""


class DataError(TransferdetError):
    """Structurally broken dataset input: names the file and, where known, the element or line."""

    def __init__(self, path: str | Path, problem: str, where: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.where = where
        location = f"{self.path}: {where}" if where else str(self.path)
        super().__init__(f"{location}: {problem}")
