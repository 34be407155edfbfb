"""Scripts run end to end with tiny settings (as NumPyro's test_examples.py does)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


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


def test_notebooks_run_top_to_bottom():
    """Each notebook's code cells run in order in one namespace (no kernel needed)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        namespace = {"__name__": "__main__"}
        for cell in cells:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
