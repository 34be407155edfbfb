"""The NLL-and-loss figure: drawn from a fit (never fitting), rendered to PNG, and showing what
it claims -- two curves with one argmin at the fitted value, related by the family's identity."""

import numpy as np
import pytest
import scipy.stats as st
from figure_checks import agg_backend  # noqa: F401 (autouse fixture)

import bayesloss
from bayesloss.data import make_synthetic
from bayesloss.plots import plot_nll_and_loss


@pytest.mark.parametrize("likelihood, coordinate", [("gaussian", "intercept"),
                                                    ("bernoulli", 1), ("laplace", 0)])
def test_nll_and_loss_side_by_side_renders_to_png(tmp_path, likelihood, coordinate):
    import matplotlib.pyplot as plt

    d = make_synthetic(likelihood, n=200, d=3, seed=8)
    fit = bayesloss.reference_fit(d.X, d.y, likelihood)
    fig, axes = plot_nll_and_loss(fit, d.X, d.y, coordinate=coordinate, num=41)
    path = tmp_path / f"{likelihood}.png"
    fig.savefig(path, dpi=60)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    grid, nll = axes[0].lines[0].get_data()
    loss = axes[1].lines[0].get_ydata()
    centre = np.ravel(fit.intercept_)[0] if coordinate == "intercept" else fit.coef_[coordinate]
    assert grid[20] == pytest.approx(centre, rel=1e-12)
    # the coordinate carries the one name of fit.params()
    name = "intercept" if coordinate == "intercept" else f"x{coordinate}"
    assert axes[0].get_xlabel() == name and name in list(fit.params()["parameter"])
    # the NLL at the fit, by scipy.stats (independent of the family's torch code)
    eta = d.X @ fit.coef_ + fit.intercept_
    if likelihood == "gaussian":
        expected = -st.norm.logpdf(d.y, eta, fit.scale_).sum()
    elif likelihood == "laplace":
        expected = -st.laplace.logpdf(d.y, eta, fit.scale_).sum()
    else:
        expected = -st.bernoulli.logpmf(d.y, 1 / (1 + np.exp(-eta))).sum()
    assert nll[20] == pytest.approx(expected, rel=1e-12)
    # same argmin (the LAD objective is flat-bottomed only at a kink: still the centre here)
    assert np.argmin(nll) == np.argmin(loss) == 20
    # NLL = a·loss + c along the path: a = 1/(2σ²), 1/b, 1
    a = {"gaussian": lambda s: 1 / (2 * s**2), "laplace": lambda s: 1 / s,
         "bernoulli": lambda s: 1.0}[likelihood](fit.scale_)
    np.testing.assert_allclose(nll - a * loss, (nll - a * loss)[0], rtol=1e-10)


def test_a_fit_without_intercept_needs_a_weight_index():
    d = make_synthetic("gaussian", n=50, d=2, seed=1)
    fit = bayesloss.reference_fit(d.X, d.y, "gaussian", fit_intercept=False)
    with pytest.raises(ValueError, match="no intercept"):
        plot_nll_and_loss(fit, d.X, d.y)
