"""Run one of the benchmark scripts and write its table as a dated Markdown file for the docs.

    python docs/benchmarks/tabulate.py docs/benchmarks/generated/speed.md \
        scripts/benchmark.py --n 100000 --d 20 --repeats 10

The script is run unchanged, in a subprocess, with ``--out`` pointing at a temporary CSV (every
benchmark script in ``scripts/`` writes its table there); the Markdown file holds that table,
the exact command, the UTC date, the machine's core count and load average before and after,
and the versions that set the numbers, so that the docs never carry a typed-in measurement.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pandas as pd

VERSIONS = ["bayesloss", "torch", "pyro-ppl", "numpy", "scipy", "scikit-learn", "statsmodels"]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cell(value) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.3g}"  # NaN: a row the script could not time
    return str(value).strip().replace("|", r"\|")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` (floats to 3 significant digits), without the tabulate package."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__)
        return 2
    target, script, args = Path(argv[0]), argv[1], argv[2:]
    env = dict(os.environ)
    # the scripts import bayesloss from the checkout they sit in
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(Path(script).resolve().parents[1]), env.get("PYTHONPATH")] if p)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "table.csv"
        subprocess.run([sys.executable, script, *args, "--out", str(csv)], check=True, env=env)
        table = pd.read_csv(csv)
    load_after = os.getloadavg()
    threads = env.get("OMP_NUM_THREADS")
    command = ("OMP_NUM_THREADS=" + threads + " " if threads else "") + shlex.join(
        ["python", script, *args])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `{command}` "
        f"(written by `python docs/benchmarks/tabulate.py {target} {shlex.join([script, *args])}`).\n"
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. Versions: "
        + ", ".join(f"{name} {_version(name)}" for name in VERSIONS) + ".\n\n"
        + to_markdown(table) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
