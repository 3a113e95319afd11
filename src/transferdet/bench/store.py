"""The results store of a benchmark: one SQLite file, ``DIR/results.sqlite``.

``jobs`` holds every ranking, fine-tuning, rung or select job with its status (pending, running,
done, failed), the hash of its definition, its times, attempts, completions, the iteration a
fine-tuning job last resumed from, and error text; ``scores`` the metric scores of ranking jobs;
``ap`` the evaluation of fine-tuning and rung jobs; ``races`` the summary of each race of select's.
A job's results and its ``done`` status are written in one transaction, so a process killed at
any moment leaves either a finished job or one to run again, never half of its results.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCORES_TABLE = """
CREATE TABLE IF NOT EXISTS scores (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    layer TEXT NOT NULL,
    features TEXT NOT NULL,
    metric TEXT NOT NULL,
    score REAL,                    -- NULL where the metric could not score (reason says why)
    reason TEXT,
    PRIMARY KEY (job_id, layer, metric)  -- a ranking job scores every layer of one forward pass
);
"""

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- rank | train | source
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    trial INTEGER,
    layer TEXT,
    features TEXT,
    config_hash TEXT NOT NULL,
    definition TEXT NOT NULL,      -- JSON: everything the job needs to run
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    seconds REAL,
    host TEXT,                     -- where it ran: host name, CPU model, vector extensions (provenance.py)
    resumed_from INTEGER,          -- a fine-tuning job's checkpoint iteration when it last resumed
    error TEXT,
    code TEXT,                     -- the code version that computed the results (provenance.py)
    artifact TEXT                  -- digest of what the job leaves on disk (a shelf source's checkpoint)
);
"""
    + SCORES_TABLE
    + """
CREATE TABLE IF NOT EXISTS ap (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    trial INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (job_id, key)
);
CREATE TABLE IF NOT EXISTS races (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id),
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    summary TEXT NOT NULL          -- JSON: a select race's pick, rungs, screen scores and cost
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- JSON
);
"""
)

STORE_FILE = "results.sqlite"


@dataclass(frozen=True)
class Job:
    """One unit of work. ``definition`` is JSON-able and holds everything needed to run it."""

    id: str
    kind: str
    dataset: str
    model: str
    trial: int | None
    layer: str | None
    features: str | None
    definition: dict[str, Any]
    legacy_id: str | None = None  # its identity in stores made before identities were made path-free

    @property
    def config_hash(self) -> str:
        """A job is identified by the hash of its definition."""
        return self.id


class Store:
    """A benchmark's SQLite store. Open with ``Store(path)``; every method commits."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._add_column("scores", "reason", "TEXT")  # a store made before metrics could fail one by one
        self._add_column("jobs", "resumed_from", "INTEGER")  # ... and before it said where a job resumed
        self._add_column("jobs", "code", "TEXT")  # ... and before it recorded the code version
        self._add_column("jobs", "artifact", "TEXT")  # ... and before a job could leave an artifact
        self._key_scores_by_layer()  # ... and before a ranking job covered several layers
        self._db.commit()

    def _add_column(self, table: str, column: str, kind: str) -> None:
        if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _key_scores_by_layer(self) -> None:
        """Rebuild an older ``scores`` table keyed by (job, metric) with the key (job, layer, metric)."""
        key = [row[1] for row in sorted(self._db.execute("PRAGMA table_info(scores)"), key=lambda r: r[5]) if row[5]]
        if "layer" in key:
            return
        with self._db:
            self._db.execute("ALTER TABLE scores RENAME TO scores_by_metric")
            self._db.execute(SCORES_TABLE)
            columns = "job_id, dataset, model, layer, features, metric, score, reason"
            self._db.execute(f"INSERT INTO scores ({columns}) SELECT {columns} FROM scores_by_metric")
            self._db.execute("DROP TABLE scores_by_metric")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    def add_jobs(self, jobs: list[Job]) -> None:
        """Register jobs not yet in the store (a job already there keeps its status and results).
        A job stored under its legacy identity is renamed to its current one first."""
        with self._transaction() as db:
            for job in jobs:
                if job.legacy_id and job.legacy_id != job.id:
                    self._rename(db, job.legacy_id, job.id)
            db.executemany(
                "INSERT OR IGNORE INTO jobs (id, kind, dataset, model, trial, layer, features, config_hash, definition)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        j.id,
                        j.kind,
                        j.dataset,
                        j.model,
                        j.trial,
                        j.layer,
                        j.features,
                        j.config_hash,
                        json.dumps(j.definition),
                    )
                    for j in jobs
                ],
            )

    @staticmethod
    def _rename(db: sqlite3.Connection, old: str, new: str) -> None:
        if db.execute("SELECT 1 FROM jobs WHERE id=?", (new,)).fetchone() is not None:
            return
        if db.execute("SELECT 1 FROM jobs WHERE id=?", (old,)).fetchone() is None:
            return
        db.execute("UPDATE jobs SET id=?, config_hash=? WHERE id=?", (new, new, old))
        db.execute("UPDATE scores SET job_id=? WHERE job_id=?", (new, old))
        db.execute("UPDATE ap SET job_id=? WHERE job_id=?", (new, old))

    def status(self, job_ids: list[str]) -> dict[str, str]:
        rows = self._db.execute(f"SELECT id, status FROM jobs WHERE id IN ({','.join('?' * len(job_ids))})", job_ids)
        return {row["id"]: row["status"] for row in rows}

    def started(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status='running', attempts=attempts+1, started=?, host=?, error=NULL WHERE id=?",
                (time.time(), socket.gethostname(), job_id),
            )

    def finished(self, job: Job, result: dict[str, Any], seconds: float) -> None:
        """Store a job's results and mark it done, atomically."""
        with self._transaction() as db:
            db.execute("DELETE FROM scores WHERE job_id=?", (job.id,))
            db.execute("DELETE FROM ap WHERE job_id=?", (job.id,))
            db.executemany(
                "INSERT INTO scores (job_id, dataset, model, layer, features, metric, score, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    # the job's feature kind: it tells a fixed background count apart (local+bg2)
                    (job.id, job.dataset, job.model, row["layer"], job.features or row["features"], row["metric"])
                    + (row["score"],)
                    + (row.get("reason"),)
                    for row in result.get("scores", [])
                ],
            )
            db.executemany(
                "INSERT INTO ap VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (job.id, job.dataset, job.model, job.trial, key, value)
                    for key, value in result.get("ap", {}).items()
                    if value is None or isinstance(value, int | float)
                ],
            )
            db.execute("DELETE FROM races WHERE job_id=?", (job.id,))
            if "race" in result:
                db.execute("INSERT INTO races VALUES (?, ?, ?, ?)",
                           (job.id, job.dataset, job.trial, json.dumps(result["race"])))  # fmt: skip
            db.execute(
                "UPDATE jobs SET status='done', completions=completions+1, finished=?, seconds=?, error=NULL,"
                " resumed_from=?, code=?, artifact=?, host=COALESCE(?, host) WHERE id=?",
                (time.time(), seconds, *(result.get(k) for k in ("resumed_from", "code", "artifact", "host")), job.id),
            )

    def failed(self, job_id: str, error: str, seconds: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status='failed', finished=?, seconds=?, error=? WHERE id=?",
                (time.time(), seconds, error, job_id),
            )

    def jobs(self, job_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Job rows (all, or those in ``job_ids``) as dicts."""
        if job_ids is None:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY rowid")
        else:
            marks = ",".join("?" * len(job_ids))
            rows = self._db.execute(f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY rowid", job_ids)
        return [dict(r) for r in rows]

    def scores(self, job_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return self._rows("scores", job_ids)

    def ap(self, job_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return self._rows("ap", job_ids)

    def _rows(self, table: str, job_ids: list[str] | None) -> list[dict[str, Any]]:
        """Rows of ``table`` whose job is done (all, or those of ``job_ids``)."""
        query = f"SELECT t.* FROM {table} t JOIN jobs j ON j.id = t.job_id WHERE j.status = 'done'"
        if job_ids is None:
            rows = self._db.execute(query + " ORDER BY t.rowid")
        else:
            marks = ",".join("?" * len(job_ids))
            rows = self._db.execute(query + f" AND t.job_id IN ({marks}) ORDER BY t.rowid", job_ids)
        return [dict(r) for r in rows]

    def races(self) -> list[dict[str, Any]]:
        """Done races: each one's job id, target, seed and summary (decoded; its budget among them)."""
        rows = self._rows("races", None)
        return [r | {"summary": json.loads(r["summary"])} for r in rows]

    def artifact(self, job_id: str) -> str | None:
        row = self._db.execute("SELECT artifact FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def code_versions(self, job_ids: list[str]) -> dict[str, dict[str, int]]:
        """Done jobs per kind and code version (``unrecorded`` for jobs from before it was recorded)."""
        marks = ",".join("?" * len(job_ids))
        rows = self._db.execute(
            f"SELECT kind, COALESCE(code, 'unrecorded'), COUNT(*) FROM jobs WHERE status='done' AND id IN ({marks})"
            " GROUP BY kind, code ORDER BY kind, MIN(finished)",
            job_ids,
        )
        versions: dict[str, dict[str, int]] = {}
        for kind, code, count in rows:
            versions.setdefault(kind, {})[code] = count
        return versions

    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])
