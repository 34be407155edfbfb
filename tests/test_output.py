"""What a new user sees: the help (every option explained, the exit codes), ``--version``,
warnings as one line each and once, no progress bars in pipes, the ``check`` table (≤ 120
columns, no NaN, a counter that matches), ``check --out`` files, whole posterior summaries, a
compressed ``posterior.nc``, and the exit codes 0 / 1 / 2 / 3."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesloss
from bayesloss import inference
from bayesloss.check import Case, run_check
from bayesloss.cli import EXIT_CODES, _format_summary, build_parser, main
from bayesloss.data import make_synthetic
from bayesloss.posterior import MIN_DRAWS, SamplerWarning

ROOT = Path(__file__).resolve().parents[1]


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_option_has_help_and_every_command_lists_the_exit_codes():
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"check", "fit", "sweep", "report", "posterior", "approximations",
                             "which-loss"}
    for name, sub in [("bayesloss", parser), *commands.items()]:
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        for code in EXIT_CODES:
            assert f"\n- {code}: " in sub.epilog, (name, code)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesloss {bayesloss.__version__}"


def _fake_fit(monkeypatch, **change):
    """``fit`` as the CLI calls it, with its result changed (or raising ``error``)."""
    real = inference.fit
    error = change.pop("error", None)

    def fake(*args, **kwargs):
        if error is not None:
            raise error
        return dataclasses.replace(real(*args, **kwargs), **change)

    monkeypatch.setattr(inference, "fit", fake)


def test_exit_codes_of_fit(monkeypatch, capsys):
    assert main(["fit", "gaussian", "--data", "diabetes"]) == 0
    _fake_fit(monkeypatch, converged=False)
    assert main(["fit", "gaussian", "--data", "diabetes"]) == 1
    _fake_fit(monkeypatch, error=inference.DivergenceError("objective became nan at step 3"))
    assert main(["fit", "gaussian", "--data", "diabetes"]) == 3
    assert "bayesloss: numerical failure: objective became nan" in capsys.readouterr().err
    assert main(["fit", "gaussian", "--data", "no-such-set"]) == 2


def test_cli_warnings_are_one_line_each_and_printed_once(capsys):
    """Too few draws: the sampler-health warning, once, as one line without source code;
    exit 1 (not converged) or 3 (divergences), as its text says."""
    rc = main(["posterior", "gaussian", "--data", "synthetic-gaussian", "--chains", "2",
               "--warmup", "10", "--draws", str(MIN_DRAWS), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    sampler = [line for line in err if "SamplerWarning" in line]
    assert len(sampler) == 1 and sampler[0].startswith("bayesloss: warning: SamplerWarning: ")
    assert all(line.startswith("bayesloss: warning: ") for line in err), err
    assert rc == (3 if "divergent" in sampler[0] else 1)


def test_sampler_warning_is_raised_once_per_posterior():
    data = make_synthetic("gaussian", n=60, d=2, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = bayesloss.posterior(data.X, data.y, "gaussian", chains=2, warmup=10,
                                   draws=MIN_DRAWS, progress=False)
        health = post.diagnostics()
    assert [w.category for w in caught] == [SamplerWarning]
    assert caught[0].filename == __file__  # the user's line, not bayesloss's internals
    assert health["problems"]
    with pytest.warns(SamplerWarning) as again:
        post.diagnostics(warn=True)
    assert again[0].filename == __file__


def test_posterior_summary_prints_whole():
    data = make_synthetic("gaussian", n=60, d=6, seed=0)
    post = bayesloss.posterior(data.X, data.y, "gaussian", method="laplace", chains=2,
                               draws=MIN_DRAWS)
    table = post.summary()
    with pd.option_context("display.max_columns", 4, "display.max_rows", 3,
                           "display.width", 60):
        text = str(table)
    assert "..." not in text and len(text.splitlines()) == len(table) + 1
    assert all(c in text.splitlines()[0] for c in table.columns)


def test_no_progress_bar_into_a_pipe():
    """stderr a pipe: no carriage returns, no tqdm bar (``it/s``), whatever runs."""
    done = subprocess.run(
        [sys.executable, "-m", "bayesloss.cli", "posterior", "gaussian", "--chains", "1",
         "--warmup", "30", "--draws", str(MIN_DRAWS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode in (0, 1, 3), done.stderr
    assert "\r" not in done.stderr and "it/s" not in done.stderr, done.stderr[-500:]


def test_notebook_without_ipywidgets_gets_no_bar_and_no_warning(monkeypatch):
    from bayesloss import console

    monkeypatch.setattr(console, "_in_notebook", lambda: True)
    monkeypatch.setattr(console, "_widgets", lambda: False)
    assert not console.interactive() and not console.show_progress(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = console.progress_bar(range(3), disable=True)
        assert list(bar) == [0, 1, 2]


def test_check_table_is_narrow_filled_and_counted(capsys):
    cases = [Case("cpunish", "poisson", {}),
             Case("diabetes", "gaussian", {"estimator": "map", "prior": "laplace",
                                           "prior_scale": 300.0, "noise_scale": 55.0})]
    rows, summary = run_check(cases, include_longley=True, training=["gaussian"])
    progress = capsys.readouterr().err.splitlines()
    assert len(summary) == 6  # 2 cases, longley, stackloss, 2 training rows for gaussian
    assert [line.split("]")[0].split("[")[1] for line in progress] == ["1/6", "2/6", "3/6",
                                                                       "4/6", "6/6"]
    text = _format_summary(summary)
    assert max(map(len, text.splitlines())) <= 120, text
    assert "nan" not in text.lower()
    training = [line for line in text.splitlines()
                if line.startswith("gaussian") and "training (Adam)" in line]
    assert len(training) == 2 and all(" — " in line and "abs." in line for line in training)
    assert "max error = the largest |Δparam|" in text  # says what a training row measures


def test_check_table_stays_narrow_for_the_longest_labels():
    summary = pd.DataFrame([{
        "family": "hetero_gaussian", "estimator": "map", "prior": "studentt",
        "scale": "per row (n=2000, 0.5…2)", "data": "synthetic-hetero_gaussian",
        "max_rel_err": 1.23e-100, "objective_gap": -1.0e-100, "param_tol": 1e-5,
        "objective_tol": 1e-9, "converged": False, "reference_converged": False,
        "reference_kind": "verified", "passed": False}])
    text = _format_summary(summary)
    assert max(map(len, text.splitlines())) <= 120, text


def test_check_out_with_a_data_file_writes_the_three_files(tmp_path, capsys):
    data = make_synthetic("gaussian", n=80, d=2, seed=2)
    path = tmp_path / "d.csv"
    pd.DataFrame(np.c_[data.X, data.y], columns=["a", "b", "y"]).to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["check", "--data", str(path), "--target", "y", "--family", "gaussian",
                 "--out", str(out)]) == 0
    rows = pd.read_csv(out / "check_rows.csv")
    summary = pd.read_csv(out / "check_summary.csv")
    assert list(rows["parameter"]) == ["a", "b", "intercept", "scale", "objective"]
    assert len(summary) == 1 and bool(summary["passed"].iloc[0])
    assert json.loads((out / "check_summary.json").read_text())[0]["family"] == "gaussian"


@pytest.mark.parametrize("likelihood", ["gaussian", "poisson"])
def test_posterior_netcdf_is_compressed_and_reads_back(tmp_path, likelihood):
    import arviz as az

    from bayesloss import diagnostics

    data = make_synthetic(likelihood, n=300, d=2, seed=0)
    post = bayesloss.posterior(data.X, data.y, likelihood, method="laplace", chains=4,
                               draws=250)
    ours, plain = tmp_path / "ours.nc", tmp_path / "plain.nc"
    diagnostics.to_netcdf(post.idata, ours)
    post.idata.to_netcdf(str(plain))  # ArviZ's own: zlib on float64
    # the pointwise log-likelihood stays float64 (incompressible, most of the file): the
    # saving is in the predictive draws, whole for counts, float32 for continuous draws
    assert ours.stat().st_size < (0.9 if likelihood == "poisson" else 0.75) * plain.stat().st_size
    back = az.from_netcdf(ours)
    assert set(back.groups()) == set(post.idata.groups())
    for group in ("posterior", "log_likelihood", "observed_data"):
        for name, var in post.idata[group].data_vars.items():
            np.testing.assert_array_equal(back[group][name].values, var.values)
    ppc = back.posterior_predictive["obs"].values
    if likelihood == "poisson":  # counts: stored as integers, exactly
        assert ppc.dtype.kind == "i"
        np.testing.assert_array_equal(ppc, post.idata.posterior_predictive["obs"].values)
    else:  # float32: 7 digits
        np.testing.assert_allclose(ppc, post.idata.posterior_predictive["obs"].values,
                                   rtol=1e-6, atol=1e-6)


def test_importing_bayesloss_in_a_notebook_kernel_raises_no_tqdm_warning():
    """In a real Jupyter kernel without ipywidgets, ``tqdm.auto`` (which Pyro's MCMC module
    imports) warns "IProgress not found" unless imported quietly first; our bars are off."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    try:
        import ipywidgets  # noqa: F401
        pytest.skip("ipywidgets installed: tqdm.auto has its widget and never warns")
    except ImportError:
        pass
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})"),
                nbformat.v4.new_code_cell("import bayesloss\nfrom bayesloss.console import "
                                          "interactive\nprint(interactive())")]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    assert [out.get("text") for out in outputs] == ["False\n"], outputs
