"""The run store: an SQLite database at ``OUT/runs.sqlite``, one row per ``run_id``.

Table ``runs`` has ``run_id`` as its primary key and one column per field of a row (see
:mod:`bayesloss.experiments.run`); each finished run is written in its own transaction, so a
process killed at any moment (SIGKILL included) leaves every finished run stored exactly once
and none half-written. Table ``meta`` records the config that owns the store: a store written
by a different config is refused rather than mixed.

Only the client process writes; workers return rows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from ..optional import require
from .config import SweepConfig, validate_config
from .grid import RUN_KEYS
from .run import RESULT_COLUMNS

FILENAME = "runs.sqlite"
COLUMNS = ("run_id", "status", "error", *RUN_KEYS, *RESULT_COLUMNS)
_TYPES = {"converged": "INTEGER", "ref_passed": "INTEGER", "ref_converged": "INTEGER",
          "fit_intercept": "INTEGER", "reference": "INTEGER"}
#: columns stored as JSON text (lists) in SQLite
_JSON = ("scale_range", "noise_scale")


class StoreMismatchError(ValueError):
    """OUT already holds a store written by a different config."""


class RunStore:
    """The SQLite store of one sweep (use as a context manager, or call :meth:`close`)."""

    def __init__(self, out, config: SweepConfig):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / FILENAME
        # autocommit off: each `with self.conn:` block is one transaction
        self.conn = sqlite3.connect(self.path, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        cols = ", ".join(f'"{c}" {_TYPES.get(c, "")}'.rstrip() for c in COLUMNS[1:])
        with self.conn:
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, {cols})")
            # a store written before a result column existed gains it (empty for old runs)
            present = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
            for c in COLUMNS[1:]:
                if c not in present:
                    self.conn.execute(f'ALTER TABLE runs ADD COLUMN "{c}" {_TYPES.get(c, "")}')
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('digest', ?), ('config', ?), ('name', ?)",
                (config.digest(), json.dumps(config.model_dump(mode="json")), config.sweep.name))
        self.config = config
        owner = dict(self.conn.execute("SELECT key, value FROM meta"))
        if owner["digest"] != config.digest():
            self.close()
            raise StoreMismatchError(
                f"{self.path} belongs to another config (sweep {owner['name']!r}, config "
                f"{owner['digest']}); this config ({config.sweep.name!r}, {config.digest()}) "
                "differs, and runs of two configs are never mixed in one store. Use another "
                "--out directory, or delete that one to start over.")

    @classmethod
    def open_existing(cls, out) -> "RunStore":
        """Open the store in ``out`` with the config recorded in it (for reports)."""
        path = Path(out) / FILENAME
        if not path.exists():
            raise FileNotFoundError(f"no run store at {path}: run `bayesloss sweep` first")
        with sqlite3.connect(path) as conn:
            config = dict(conn.execute("SELECT key, value FROM meta"))["config"]
        conn.close()
        return cls(out, validate_config(json.loads(config), str(path)))

    def finished(self, include_failed: bool = True) -> set[str]:
        """The run_ids already stored (done, and failed unless ``include_failed`` is False)."""
        query = "SELECT run_id FROM runs" + ("" if include_failed else " WHERE status = 'done'")
        return {r[0] for r in self.conn.execute(query)}

    def write(self, row: dict) -> None:
        """Store one finished run in its own transaction (a retried failure is replaced)."""
        values = [json.dumps(row[c]) if c in _JSON and row[c] is not None else row[c]
                  for c in COLUMNS]
        marks = ", ".join("?" * len(COLUMNS))
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in COLUMNS[1:])
        with self.conn:
            self.conn.execute(
                f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT(run_id) DO UPDATE "
                f"SET {updates} WHERE runs.status = 'failed'", values)

    def table(self) -> pd.DataFrame:
        """All stored runs as a DataFrame, in the config's grid order."""
        from .grid import expand

        frame = pd.read_sql_query("SELECT * FROM runs", self.conn)
        for c in _JSON:
            frame[c] = frame[c].map(lambda v: None if v is None else json.loads(v))
        for c in _TYPES:
            frame[c] = frame[c].map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
        order = {r["run_id"]: i for i, r in enumerate(expand(self.config))}
        frame = frame.assign(_order=frame["run_id"].map(order)).sort_values("_order")
        return frame.drop(columns="_order").reset_index(drop=True)

    def export(self, formats=("csv",)) -> list[Path]:
        """Write ``OUT/runs.csv`` and/or ``OUT/runs.parquet`` (pyarrow); return their paths."""
        frame = self.table()
        # list-valued cells as JSON text: one column type for every engine
        for c in _JSON:
            frame[c] = frame[c].map(lambda v: None if v is None else json.dumps(v))
        paths = []
        for fmt in formats:
            path = self.out / f"runs.{fmt}"
            if fmt == "parquet":
                require("pyarrow", "Parquet export")
                frame.to_parquet(path, index=False)
            elif fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                raise ValueError(f"unknown export format {fmt!r}; valid: parquet, csv")
            paths.append(path)
        return paths

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
