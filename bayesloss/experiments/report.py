"""The report of a sweep: ``OUT/report.md`` and ``OUT/report.html``, with tables and PNG
figures (``OUT/figures/``), each figure with one sentence, computed from the table, on what it
shows. Reads only the run store; fits nothing.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .run import TIMING_COLUMNS
from .grid import swept_axes
from .store import FILENAME, RunStore

#: the metrics summarised per grid point, when present
METRICS = ("coef_error", "test_nll", "test_loss", "test_accuracy", "test_ece",
           "ref_max_rel_err", "objective_gap", "seconds")
_IGNORED = {"run_id", "status", "error", "seed", "warnings", "coef", "intercept", "ref_coef",
            "ref_intercept", "true_coef", "params", "scale_range", *TIMING_COLUMNS}


def swept_keys(table: pd.DataFrame) -> list[str]:
    """The run keys that take more than one value in ``table`` (seeds excluded): the swept
    axes, and keys that only some runs use (an MLE's prior is None), which separate grid
    points."""
    from .grid import RUN_KEYS

    return [k for k in RUN_KEYS if k not in _IGNORED
            and table[k].astype(str).nunique(dropna=False) > 1]


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over seeds per grid point (done runs), with the number of runs."""
    done = table[table["status"] == "done"]
    keys = swept_keys(table) or ["likelihood"]
    metrics = [m for m in METRICS if m in done and done[m].notna().any()]
    frame = done[keys + metrics].copy()
    for m in metrics:
        frame[m] = pd.to_numeric(frame[m])
    grouped = frame.groupby(keys, dropna=False, sort=False)
    out = grouped[metrics].mean()
    out.insert(0, "runs", grouped.size())
    return out.reset_index()


# --- one sentence per figure, from the table ------------------------------------------------


def _caption_map_vs_mle(table):
    done = table[table["status"] == "done"]
    mle, map_ = done[done["estimator"] == "mle"], done[done["estimator"] == "map"]
    if mle.empty or map_.empty:
        return "Estimation error ‖ŵ − w*‖₂ against n (mean over seeds)."
    n0, n1 = done["n"].min(), done["n"].max()
    taus = map_.groupby(["prior_scale", "n"])["coef_error"].mean()
    best = taus.xs(n0, level="n").idxmin()
    e_mle = mle.groupby("n")["coef_error"].mean()
    return (f"At n = {n0} the best MAP (τ = {best:g}) has mean error "
            f"{taus[(best, n0)]:.3g} against the MLE's {e_mle[n0]:.3g} "
            f"({1 - taus[(best, n0)] / e_mle[n0]:.0%} lower); at n = {n1} it is "
            f"{taus[(best, n1)]:.3g} against {e_mle[n1]:.3g}, so the prior's help fades as the "
            "data grow.")


def _caption_regularization_path(table):
    done = table[(table["status"] == "done") & table["ref_coef"].notna()]
    if done.empty:
        return "MAP coefficients against the prior scale τ."
    diff = max(np.max(np.abs(np.subtract(json.loads(a), json.loads(b))))
               for a, b in zip(done["coef"], done["ref_coef"]))
    taus = done["prior_scale"]
    return (f"For τ from {taus.min():g} to {taus.max():g}, our MAP coefficients (circles) lie "
            f"on the reference paths (lines: closed-form ridge at λ = σ²/τ², scikit-learn Lasso "
            f"at α = σ²/(n·τ)) within {diff:.1e} everywhere, and shrink to 0 as τ → 0.")


def _caption_robustness(table):
    done = table[table["status"] == "done"]
    means = done.groupby(["likelihood", "outliers"])["coef_error"].mean()
    lo, hi = done["outliers"].min(), done["outliers"].max()
    parts = [f"{lik} {means[(lik, lo)]:.3g} → {means[(lik, hi)]:.3g}"
             for lik in sorted(done["likelihood"].unique())
             if (lik, lo) in means and (lik, hi) in means]
    at_hi = {lik: means[(lik, hi)] for lik in done["likelihood"].unique() if (lik, hi) in means}
    return (f"Going from {lo:.0%} to {hi:.0%} outliers, the mean coefficient error moves "
            + ", ".join(parts) + f": at {hi:.0%} the {min(at_hi, key=at_hi.get)} likelihood "
            f"is pulled least and the {max(at_hi, key=at_hi.get)} one most.")


def _caption_classification(table):
    done = table[table["status"] == "done"]
    n0, n1 = done["n"].min(), done["n"].max()
    ll = done.groupby(["estimator", "prior_scale", "n"], dropna=False)["test_nll"].mean()
    ece = done.groupby(["estimator", "n"])["test_ece"].mean()

    def at(est, n):
        s = ll[ll.index.get_level_values(0) == est]
        s = s[s.index.get_level_values(2) == n]
        return s.min() if len(s) else np.nan

    return (f"Held-out log-loss at n = {n0}: MLE {at('mle', n0):.3g}, best MAP "
            f"{at('map', n0):.3g}; at n = {n1}: {at('mle', n1):.3g} and {at('map', n1):.3g} "
            f"(left); the calibration error (right) of the MLE goes from "
            f"{ece.get(('mle', n0), np.nan):.3g} to {ece.get(('mle', n1), np.nan):.3g}.")


CAPTIONS = {
    "map_vs_mle": _caption_map_vs_mle,
    "regularization_path": _caption_regularization_path,
    "robustness": _caption_robustness,
    "classification": _caption_classification,
}


# --- writers --------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4g}"
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}",
                         border=0, classes="runs")


def write_report(out) -> list[Path]:
    """Write ``OUT/report.md``, ``OUT/report.html`` and ``OUT/figures/*.png`` from the store.

    Returns the paths written (reports first, then figures).
    """
    from ..plots.experiments import COMPARISON_PLOTS, save_figure

    out = Path(out)
    with RunStore.open_existing(out) as store:
        table, config = store.table(), store.config
    comparison = config.sweep.comparison
    done = table[table["status"] == "done"]
    failed = table[table["status"] == "failed"]
    figures = []
    if not done.empty:
        (out / "figures").mkdir(exist_ok=True)
        path = out / "figures" / f"{comparison}.png"
        save_figure(COMPARISON_PLOTS[comparison](table), path)
        figures.append((path, CAPTIONS[comparison](table)))
    overview = pd.DataFrame([{
        "runs": len(table), "done": len(done), "failed": len(failed),
        "converged": int(done["converged"].astype(bool).sum()),
        "reference agrees": int(done["ref_passed"].fillna(False).astype(bool).sum())
        if "ref_passed" in done else 0,
        "compute seconds": float(pd.to_numeric(table["seconds"]).sum()),
    }])
    summary = summary_table(table) if not done.empty else pd.DataFrame()
    errors = failed[["run_id", "likelihood", "estimator", "n", "error"]]
    title = f"Sweep `{config.sweep.name}` ({comparison})"
    swept = "; ".join(f"{k} ∈ {{{', '.join(map(_fmt, v))}}}"
                      for k, v in swept_axes(config).items())
    intro = (f"Config {config.digest()}; {len(table)} runs (seeds {config.sweep.seeds}). "
             f"Swept: {swept or 'nothing'}; every other setting fixed. Means over seeds.")
    # only what the sweep wrote: Parquet exists only where pyarrow was installed
    stored = [name for name in ("runs.csv", "runs.parquet", FILENAME) if (out / name).exists()]

    md = [f"# {title}", "", intro, "", "## Runs", "", markdown_table(overview), ""]
    for path, caption in figures:
        md += [f"![{comparison}](figures/{path.name})", "", caption, ""]
    if not summary.empty:
        md += ["## Summary per grid point", "", markdown_table(summary), ""]
    if len(errors):
        md += ["## Failed runs", "", markdown_table(errors), ""]
    md += ["The full table (one row per run): " + ", ".join(f"`{n}`" for n in stored) + ".",
           ""]
    (out / "report.md").write_text("\n".join(md))

    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
         "table.runs{border-collapse:collapse;font-size:85%}"
         "table.runs td,table.runs th{padding:2px 8px;border-bottom:1px solid #ddd}</style>",
         "</head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>",
         "<h2>Runs</h2>", _html_table(overview)]
    for path, caption in figures:
        h += [f"<figure><img src='figures/{path.name}' alt='{comparison}'>"
              f"<figcaption>{html.escape(caption)}</figcaption></figure>"]
    if not summary.empty:
        h += ["<h2>Summary per grid point</h2>", _html_table(summary)]
    if len(errors):
        h += ["<h2>Failed runs</h2>", _html_table(errors)]
    h += ["<p>The full table (one row per run): "
          + ", ".join(f"<a href='{n}'><code>{n}</code></a>" for n in stored)
          + ".</p></body></html>"]
    (out / "report.html").write_text("\n".join(h))
    return [out / "report.md", out / "report.html", *(p for p, _ in figures)]
