"""Scripts run end to end with tiny settings (as NumPyro's test_examples.py does)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow  # a script in its own interpreter: start-up and six timed cases
def test_benchmark_script_runs_and_reports_every_case(tmp_path):
    out = tmp_path / "bench.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--n", "300", "--d", "5",
         "--repeats", "1", "--out", str(out)],
        check=True, cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, installed or not
    )
    table = pd.read_csv(out)
    assert len(table) == 6 and (table["ratio"] > 0).all()
    # same problem, same answer: the two solvers agree in every case
    assert (table["max_rel_diff"] < 1e-5).all(), table


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_in_a_real_kernel(path):
    """Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient + ipykernel), as a
    reader would run it; the assertions in its cells are what it checks."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},  # the notebook's imports see this checkout
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    client.execute(env=env)  # raises CellExecutionError, with the cell, on any failure
