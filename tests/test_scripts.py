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
    table = pd.read_csv(out, dtype={"threads": str})
    # every case in both thread settings, each measured in its own process
    assert sorted(table["threads"].value_counts().items()) == [("1", 6), ("default", 6)]
    assert (table["ratio"] > 0).all()
    # same problem, same answer: the two solvers agree in every case
    assert (table["max_rel_diff"] < 1e-5).all(), table


def _execute_from_its_folder(path, folder=None):
    """Run a notebook top to bottom in a fresh Jupyter kernel (nbclient + ipykernel) started in
    the notebook's own folder (or ``folder``), as Jupyter starts it, with the backend Jupyter
    gives it (inline: no MPLBACKEND); the assertions in its cells are what it checks. Returns
    the executed cells' outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(folder or path.parent)}})
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    client.execute(env={**env, "PYTHONPATH": str(ROOT)})  # CellExecutionError on any failure
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _check_outputs(path, outputs):
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} shows no figure"
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "TqdmWarning" not in stderr and "IProgress" not in stderr, stderr


def test_a_notebook_runs_from_its_own_folder_and_shows_its_figures():
    """The notebook that reads the repository's sweep config (it failed from its own folder)."""
    path = ROOT / "notebooks" / "03_map_vs_mle.ipynb"
    _check_outputs(path, _execute_from_its_folder(path))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_runs_from_its_own_folder_and_shows_its_figures(path):
    _check_outputs(path, _execute_from_its_folder(path))


@pytest.mark.slow
def test_the_config_reading_notebook_runs_from_the_repository_root_too():
    path = ROOT / "notebooks" / "03_map_vs_mle.ipynb"
    _check_outputs(path, _execute_from_its_folder(path, ROOT))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs_or_a_fixed_backend(path):
    """Outputs stay stripped (the docs build executes the notebooks) and no cell pins a
    non-interactive backend, which hides every figure from the reader."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert not any("matplotlib.use(" in cell.source or "switch_backend" in cell.source
                   for cell in code)
