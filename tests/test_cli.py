"""Your own data from the command line: CSV / Parquet files for ``fit`` and ``check``'s
single-case mode, in-process through ``main`` and once end to end through the installed
``bayesloss`` entry point, and every bad input answered with a clear message and exit code 2."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from bayesloss.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    """The installed ``bayesloss`` command (``pip install .`` puts it beside this Python) in a
    fresh interpreter, importing this checkout."""
    command = shutil.which("bayesloss", path=str(Path(sys.executable).parent))
    assert command, f"no bayesloss entry point beside {sys.executable}: pip install ."
    return subprocess.run(
        [command, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(7)
    n = 150
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n), "income": rng.normal(50, 20, n),
        "smoker": rng.random(n) < 0.3, "city": rng.choice(["Lyon", "Oslo"], n),
    })
    frame["y"] = 0.3 * frame["age"] - 0.1 * frame["income"] + 2 * frame["smoker"] \
        + rng.normal(0, 1, n)
    frame["species"] = np.where(frame["y"] > frame["y"].median(), "tall", "short")
    return frame


def printed_params(stdout: str) -> dict:
    """The ``parameter value …`` rows of a printed summary (name, then its value)."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and ":" not in parts[0] and "=" not in line:
            try:
                rows[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return rows


def test_fit_gaussian_on_a_csv_end_to_end(tmp_path, table):
    path = tmp_path / "some.csv"
    table.drop(columns=["city", "species"]).to_csv(path, index=False)
    done = run_cli("fit", "gaussian", "--data", path, "--target", "y")
    assert done.returncode == 0, done.stderr
    X = table[["age", "income", "smoker"]].to_numpy(dtype=float)
    ols = LinearRegression().fit(X, table["y"])
    params = printed_params(done.stdout)
    assert set(params) >= {"age", "income", "smoker", "intercept", "scale"}
    # printed to 10 significant digits; the fit agrees with OLS far closer than that
    for name, value in zip(["age", "income", "smoker"], ols.coef_):
        assert params[name] == pytest.approx(value, rel=1e-8), name
    assert params["intercept"] == pytest.approx(ols.intercept_, rel=1e-8)
    assert "LinearRegression" in done.stdout and "n = 150" in done.stdout


def test_fit_parquet_with_features_and_string_labels(tmp_path, table, capsys):
    path = tmp_path / "d.parquet"
    table.to_parquet(path)
    rc = main(["fit", "bernoulli", "--data", str(path), "--target", "species",
               "--features", "age,income", "--estimator", "map", "--prior-scale", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "target 'species' encoded as: 0 = short, 1 = tall" in out
    sk = LogisticRegression(C=4.0, solver="newton-cholesky", tol=1e-12).fit(
        table[["age", "income"]], table["species"] == "tall")
    params = printed_params(out)
    assert set(params) >= {"age", "income", "intercept"} and "smoker" not in params
    np.testing.assert_allclose([params["age"], params["income"]], sk.coef_[0], rtol=1e-6)


def test_categorical_target_mapping_is_printed(tmp_path, capsys):
    from bayesloss.data import load_dataset

    d = load_dataset("iris")
    frame = pd.DataFrame(d.X, columns=["sl", "sw", "pl", "pw"])
    frame["kind"] = np.array(["setosa", "versicolor", "virginica"])[d.y]
    frame.to_csv(tmp_path / "iris.csv", index=False)
    rc = main(["fit", "categorical", "--data", str(tmp_path / "iris.csv"), "--target", "kind",
               "--estimator", "map"])
    out = capsys.readouterr().out
    assert rc == 0 and "0 = setosa, 1 = versicolor, 2 = virginica" in out
    assert "pw[2]" in out


def test_check_single_case_on_a_csv(tmp_path, table, capsys):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    out_dir = tmp_path / "out"
    rc = main(["check", "--data", str(path), "--target", "y", "--features", "age,income,smoker",
               "--family", "gaussian", "--estimator", "map", "--noise-scale", "1.0",
               "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert rc == 0 and out.rstrip().endswith("PASS")
    rows = pd.read_csv(out_dir / "check_rows.csv")
    assert rows["parameter"].tolist()[:3] == ["age", "income", "smoker"]
    assert rows["passed"].all() and "..." not in out


BAD = [
    ("missing target", lambda t: t, ["--target", "nope"],
     r"no target column 'nope' in .*its columns are \['age'"),
    ("text feature", lambda t: t.drop(columns="species"), ["--target", "y"],
     r"non-numeric feature column\(s\) \['city'\].*get_dummies"),
    ("unknown feature", lambda t: t, ["--target", "y", "--features", "age,height"],
     r"no feature column\(s\) \['height'\]"),
    ("missing values", lambda t: t.assign(age=t["age"].where(t.index > 2)),
     ["--target", "y", "--features", "age"], r"missing values in .*'age' \(3 rows\)"),
    ("text target", lambda t: t, ["--target", "species", "--features", "age"],
     r"target column 'species' is not numeric"),
    ("no --target", lambda t: t, [], r"--target COLUMN"),
]


@pytest.mark.parametrize("command", ["fit", "check"])
@pytest.mark.parametrize("case, edit, flags, message", BAD, ids=[b[0] for b in BAD])
def test_bad_data_file_exits_2_with_a_clear_message(tmp_path, table, capsys, command, case,
                                                    edit, flags, message):
    path = tmp_path / "d.csv"
    edit(table).to_csv(path, index=False)
    out_dir = tmp_path / "out"
    argv = [command, "gaussian"] if command == "fit" else [command, "--family", "gaussian",
                                                            "--out", str(out_dir)]
    rc = main(argv + ["--data", str(path)] + flags)
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(message, err), err
    assert not out_dir.exists()  # nothing half-written


def test_empty_and_header_only_files(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b,y\n")
    assert main(["fit", "gaussian", "--data", str(tmp_path / "empty.csv"), "--target", "y"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["fit", "gaussian", "--data", str(tmp_path / "header.csv"), "--target", "y"]) == 2
    assert "no rows" in capsys.readouterr().err
    assert main(["fit", "gaussian", "--data", str(tmp_path / "gone.csv"), "--target", "y"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_parquet_without_pyarrow(tmp_path, table, capsys, monkeypatch):
    path = tmp_path / "d.parquet"
    table.to_parquet(path)
    # as if neither Parquet engine were installed: importing them fails
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    rc = main(["fit", "gaussian", "--data", str(path), "--target", "y", "--features", "age"])
    assert rc == 2
    assert 'needs the optional package \'pyarrow\', which is not installed: pip install ' \
        '"bayesloss[parquet]"' in capsys.readouterr().err


def test_data_flags_that_do_not_fit_the_mode(capsys):
    assert main(["fit", "gaussian", "--data", "diabetes", "--target", "y"]) == 2
    assert "go with a data file" in capsys.readouterr().err
    assert main(["check", "--prior-scale", "2"]) == 2
    assert "single-case mode" in capsys.readouterr().err
    assert main(["check", "--data", "mine"]) == 2
    assert "or a data file" in capsys.readouterr().err


def test_check_single_case_needs_one_family(tmp_path, table, capsys):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    assert main(["check", "--data", str(path), "--target", "y"]) == 2
    assert "exactly one --family" in capsys.readouterr().err


def test_check_progress_is_plain_lines_when_not_a_terminal(capsys):
    from bayesloss.check import Case, run_check

    cases = [Case("diabetes", "gaussian", {}), Case("cpunish", "poisson", {})]
    run_check(cases, include_longley=False, progress=True)
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    assert err.splitlines() == [f"bayesloss check [{i}/2] {c.id}" for i, c in enumerate(cases, 1)]


def test_posterior_on_a_csv_names_its_weights(tmp_path, table, capsys):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    rc = main(["posterior", "gaussian", "--data", str(path), "--target", "y",
               "--features", "age,income", "--method", "laplace", "--quiet"])
    out = capsys.readouterr().out
    named = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert rc == 0 and {"age", "income", "intercept", "scale"} <= named and "n = 150" in out
    assert "weight[" not in out and "bias" not in out


@pytest.mark.parametrize("argv", [["posterior", "gaussian"], ["approximations", "gaussian"],
                                  ["which-loss"]])
def test_posterior_and_which_loss_bad_data_file_exit_2(tmp_path, table, capsys, argv):
    path = tmp_path / "d.csv"
    table.to_csv(path, index=False)
    out = ["--out", str(tmp_path / "out")] if argv[0] != "which-loss" else []
    assert main(argv + ["--data", str(path), "--target", "nope"] + out) == 2
    assert "no target column 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty.csv").write_text("")
    assert main(argv + ["--data", str(tmp_path / "empty.csv"), "--target", "y"]) == 2
    assert "is empty" in capsys.readouterr().err
