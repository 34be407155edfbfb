"""The deep-learning figures: rendered to PNG, and showing what they claim -- one minimiser of
MSE and NLL for every σ (numpy's least squares), a band whose width follows σ(x) only for the
heteroscedastic fit, a network's band of width 2σ̂ about its mean."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats as st
from figure_checks import agg_backend  # noqa: F401 (autouse fixture)

from bayesloss.plots import loss_landscape

SIGMAS = (0.3, 1.0, 4.0)


def _render(fig, path):
    fig.savefig(path, dpi=60)
    plt.close(fig)
    image = plt.imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # not blank: many distinct colours (a blank or one-colour canvas has one or two)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50


def _line_data(n=60, seed=3):
    # an unscaled, off-centre feature: slope and intercept strongly correlated
    rng = np.random.default_rng(seed)
    x = rng.uniform(40.0, 90.0, n)
    y = 2.5 - 0.07 * x + rng.normal(0.0, 0.8, n)
    (a, b), *_ = np.linalg.lstsq(np.c_[x, np.ones(n)], y, rcond=None)
    return x, y, a, b


def test_loss_landscape_renders_and_every_sigma_has_the_least_squares_minimiser(tmp_path):
    x, y, a, b = _line_data()
    # grids with the least-squares point at index (12, 7), off the centre
    slopes = a + 0.004 * np.arange(-7, 18)
    intercepts = b + 0.25 * np.arange(-12, 9)
    fig = loss_landscape(x, y, slopes, intercepts, sigmas=SIGMAS)
    heat = fig.axes[: 1 + len(SIGMAS)]
    surfaces = [ax.collections[0].get_array().reshape(intercepts.size, slopes.size)
                for ax in heat]
    for z, ax in zip(surfaces, heat):
        i, j = np.unravel_index(np.argmin(z), z.shape)
        assert (i, j) == (12, 7)  # numpy lstsq's point, for MSE and every σ
        assert ax.lines[0].get_xdata()[0] == slopes[7]  # the marked minimum
    mse, nlls = surfaces[0], surfaces[1:]
    n = x.size
    # values: scipy's normal log density at the least-squares line; MSE = RSS / n
    resid = y - a * x - b
    assert mse[12, 7] == pytest.approx(resid @ resid / n, rel=1e-12)
    for s, z in zip(SIGMAS, nlls):
        assert z[12, 7] == pytest.approx(-st.norm.logpdf(resid, 0.0, s).mean(), rel=1e-12)
    # curvature: the NLL's second differences are the MSE's divided by 2σ²
    for s, z in zip(SIGMAS, nlls):
        np.testing.assert_allclose(np.diff(z, 2, axis=1), np.diff(mse, 2, axis=1) / (2 * s**2),
                                   rtol=1e-6)
    # the slices below: through the minimum, one NLL curve per σ and the MSE on a twin axis
    slope_cut, twin = fig.axes[1 + len(SIGMAS)], fig.axes[3 + len(SIGMAS)]
    for line, z in zip(slope_cut.lines, nlls):
        np.testing.assert_array_equal(line.get_ydata(), z[12])
    np.testing.assert_array_equal(twin.lines[0].get_ydata(), mse[12])
    _render(fig, tmp_path / "landscape.png")


def test_loss_landscape_marks_a_fit(tmp_path):
    import bayesloss

    x, y, a, b = _line_data(n=40, seed=11)
    ours = bayesloss.fit(x[:, None], y, "gaussian", noise_scale=1.0)
    fig = loss_landscape(x, y, a + np.linspace(-0.02, 0.02, 9), b + np.linspace(-1, 1, 9),
                         sigmas=(1.0,), fit=ours)
    marks = [line for line in fig.axes[0].lines if line.get_label() == "fit"]
    assert marks[0].get_xdata()[0] == pytest.approx(a, rel=1e-8)
    assert marks[0].get_ydata()[0] == pytest.approx(b, rel=1e-8)
    _render(fig, tmp_path / "marked.png")


@pytest.mark.parametrize("kwargs, match", [
    ({"sigmas": (1.0, -1.0)}, "sigmas must be positive"),
    ({"slopes": [0.0, 0.0, 1.0]}, "slopes must be an increasing"),
    ({"x": np.ones((5, 2))}, "x must be one feature"),
    ({"y": np.ones(4)}, "x and y differ in length"),
])
def test_loss_landscape_bad_input(kwargs, match):
    args = dict(x=np.arange(5.0), y=np.arange(5.0), slopes=[0.0, 1.0, 2.0],
                intercepts=[-1.0, 0.0, 1.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        loss_landscape(**args)


def _hetero_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 6.0, n)
    y = 3.0 - 0.8 * x + np.exp(-1.0 + 0.35 * x) * rng.standard_normal(n)
    return x, y


def test_hetero_band_is_constant_for_one_sigma_and_follows_sigma_of_x(tmp_path):
    import bayesloss
    from bayesloss.plots import hetero_band

    x, y = _hetero_data(300, seed=17)
    homo = bayesloss.fit(x[:, None], y, "gaussian")
    hetero = bayesloss.fit(x[:, None], y, "hetero_gaussian")
    assert homo.converged and hetero.converged
    fig = hetero_band(homo, hetero, x, y, num=101)
    left, right = fig.axes[:2]
    grid = left.lines[0].get_xdata()
    assert grid.min() < x.min() and grid.max() > x.max() and grid.size == 101
    # ±2σ: the band is 4σ wide; constant for the gaussian fit ...
    width = left.lines[2].get_ydata() - left.lines[1].get_ydata()
    np.testing.assert_allclose(width, 4 * homo.scale_, rtol=1e-10)
    np.testing.assert_allclose(left.lines[0].get_ydata(), homo.coef_[0] * grid + homo.intercept_,
                               rtol=1e-12)
    # ... and 4·exp(a·x + c) for the heteroscedastic one, about its own mean line
    sigma = np.exp(hetero.scale_coef_[0] * grid + hetero.scale_intercept_)
    lower, mean, upper = (right.lines[k].get_ydata() for k in (1, 0, 2))
    np.testing.assert_allclose(upper - lower, 4 * sigma, rtol=1e-10)
    np.testing.assert_allclose(mean, hetero.coef_[0] * grid + hetero.intercept_, rtol=1e-12)
    np.testing.assert_allclose(upper - mean, mean - lower, rtol=1e-10)
    # the noise grows along x here (true log σ slope 0.35 over a range of 8): so does the band
    assert (np.diff(upper - lower) > 0).all() and (upper - lower)[-1] > 5 * (upper - lower)[0]
    _render(fig, tmp_path / "hetero.png")


def test_mlp_band_is_the_network_mean_plus_minus_two_sigma(tmp_path):
    import torch

    import bayesloss
    from bayesloss.plots import mlp_band

    rng = np.random.default_rng(23)
    x = rng.uniform(-2.0, 2.0, 80)
    y = np.tanh(2.0 * x) + 0.2 * rng.standard_normal(80)
    fit = bayesloss.fit(x[:, None], y, "gaussian", estimator="map", prior_scale=1.0,
                        mean="mlp", hidden=(4,), tol=1e-6, max_iter=3000)
    assert fit.converged
    fig = mlp_band(fit, x, y, num=60)
    ax = fig.axes[0]
    grid = ax.lines[0].get_xdata()
    # the mean is the network's output: rebuilt here in plain torch from params_
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net = net.to(torch.float64)
    with torch.no_grad():
        for layer, k in ((net[0], 0), (net[2], 1)):
            layer.weight.copy_(torch.as_tensor(fit.params_[f"layers.{k}.weight"]))
            layer.bias.copy_(torch.as_tensor(fit.params_[f"layers.{k}.bias"]))
        expected = net(torch.as_tensor(grid[:, None])).numpy()[:, 0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected, rtol=1e-12, atol=1e-12)
    # the plug-in predictive's ±2σ̂, σ̂ = the learned scale = the RMS residual at the optimum
    rms = np.sqrt(np.mean((y - fit.predict(x[:, None])) ** 2))
    assert fit.scale_ == pytest.approx(rms, rel=1e-5)
    np.testing.assert_allclose(ax.lines[2].get_ydata() - ax.lines[0].get_ydata(),
                               2 * fit.scale_, rtol=1e-10)
    np.testing.assert_allclose(ax.lines[0].get_ydata() - ax.lines[1].get_ydata(),
                               2 * fit.scale_, rtol=1e-10)
    _render(fig, tmp_path / "mlp.png")


@pytest.mark.parametrize("kwargs, match", [
    ({"num": 1}, "num must be at least 2"),
    ({"x": np.ones((10, 2))}, "x must be one feature"),
])
def test_band_bad_input(kwargs, match):
    import bayesloss
    from bayesloss.plots import mlp_band

    x, y = _hetero_data(30, seed=2)
    fit = bayesloss.fit(x[:, None], y, "gaussian")
    args = dict(x=x, y=y)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mlp_band(fit, **args)
