"""The default install (no pyarrow, no dask) sweeps and reports; a missing optional engine that
was asked for is a message naming the extra, exit code 2, and nothing written. The missing
package is simulated: ``sys.modules[name] = None`` makes its import fail."""

import sys

import pandas as pd
import pytest

from bayesloss.cli import main
from bayesloss.experiments import run_sweep, validate_config
from bayesloss import optional
from bayesloss.optional import MissingExtraError

TINY = """
[sweep]
name = "tiny"
seeds = [0]

[data]
n = [30, 60]
d = 2
test_n = 50

[model]
likelihood = "gaussian"
estimator = ["mle", "map"]
prior = "normal"
prior_scale = 1.0
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _without(monkeypatch, *modules):
    """Importing ``modules`` fails, as when they are not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _without_pyarrow(monkeypatch):
    """bayesloss cannot import pyarrow. (pandas, loaded with pyarrow present, keeps using it
    for its own string columns, so pyarrow cannot leave sys.modules here.)"""
    real = optional._import

    def fail(name):
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real(name)

    monkeypatch.setattr(optional, "_import", fail)


def test_sweep_without_pyarrow_writes_csv_and_the_report_names_only_files_that_exist(
        tmp_path, config_file, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    _without_pyarrow(monkeypatch)
    out = tmp_path / "out"
    assert main(["sweep", str(config_file), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "table: runs.csv\n" in printed and "parquet" not in printed
    assert not (out / "runs.parquet").exists()
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and (runs["status"] == "done").all()
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "parquet" not in md and "parquet" not in html
    assert "`runs.csv`, `runs.sqlite`" in md
    for name in ("runs.csv", "runs.sqlite"):
        assert f"<a href='{name}'>" in html and (out / name).exists()
    # estimator and n were swept; the prior and its scale were fixed (an MLE has none, so
    # the table's column holds two values, which must not make it an axis)
    swept = md.split("Swept: ")[1].split(";")[:2]
    assert swept == ["n ∈ {30, 60}", " estimator ∈ {mle, map}"]
    assert "prior" not in md.split("Swept: ")[1].split(". Means")[0]


def test_sweep_with_pyarrow_writes_parquet_too(tmp_path, config_file, capsys):
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    assert main(["sweep", str(config_file), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "table: runs.csv, runs.parquet" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out / "runs.parquet")[["run_id", "n"]],
                                  pd.read_csv(out / "runs.csv")[["run_id", "n"]])


@pytest.mark.parametrize("argv", [["--backend", "dask"], ["--scheduler", "tcp://127.0.0.1:1"]])
def test_dask_backend_without_dask_exit_2_and_nothing_created(tmp_path, config_file,
                                                               monkeypatch, capsys, argv):
    _without(monkeypatch, "distributed", "dask")
    out = tmp_path / "out"
    assert main(["sweep", str(config_file), "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert 'pip install "bayesloss[dask]"' in err and "Traceback" not in err
    assert not out.exists()


def test_parquet_export_asked_for_without_pyarrow_fails_before_out_exists(tmp_path,
                                                                         monkeypatch):
    _without_pyarrow(monkeypatch)
    config = validate_config({"sweep": {"name": "x"}, "data": {"n": 30, "d": 2, "test_n": 50},
                              "model": {"likelihood": "gaussian"}})
    with pytest.raises(MissingExtraError, match=r'pip install "bayesloss\[parquet\]"'):
        run_sweep(config, tmp_path / "out", progress=False, export=("csv", "parquet"))
    assert not (tmp_path / "out").exists()
