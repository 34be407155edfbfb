"""Experiments are data: a validated TOML config → a grid of runs with stable ids → one row per
run in an SQLite store (a transaction per finished run) → tables → figures → a report.

::

    from bayesloss.experiments import load_config, run_sweep, write_report
    config = load_config("scripts/configs/map_vs_mle.toml")
    table = run_sweep(config, "out/map_vs_mle", workers=2)   # resumable; --backend dask too
    write_report("out/map_vs_mle")                           # report.md, report.html, PNGs

The same from the command line: ``bayesloss sweep CONFIG --out OUT`` and
``bayesloss report OUT``.
"""

from .config import ConfigError, SweepConfig, load_config, validate_config
from .execute import run_sweep
from .grid import expand, run_id
from .run import TIMING_COLUMNS, run_one
from .store import RunStore, StoreMismatchError

__all__ = [
    "ConfigError", "SweepConfig", "load_config", "validate_config", "expand", "run_id",
    "run_one", "TIMING_COLUMNS", "RunStore", "StoreMismatchError", "run_sweep",
]
