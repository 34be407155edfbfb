"""The deep-learning figures: rendered to PNG, and showing what they claim -- one minimiser of
MSE and NLL for every σ (numpy's least squares), a band whose width follows σ(x) only for the
heteroscedastic fit, a network's band of width 2σ̂ about its mean."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.stats as st  # noqa: E402

from bayesloss.plots import loss_landscape  # noqa: E402

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
