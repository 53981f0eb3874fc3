"""Figures: each function returns a Figure with the artists a reader needs (no image diffing)."""

import os

import matplotlib

# No backend chosen here: with no display matplotlib picks Agg itself, as for any user.
import matplotlib.pyplot as plt
import numpy as np
import pytest

from gatejax import cli, plots


@pytest.fixture(autouse=True)
def close_figures():
  yield
  plt.close("all")


def _legend_texts(ax):
  legend = ax.get_legend()
  assert legend is not None, "the axis has no legend"
  return [t.get_text() for t in legend.get_texts()]


def test_hidden_norm_curves_median_and_band():
  runs = np.stack([np.linspace(1, 2, 10), np.linspace(1, 4, 10), np.linspace(1, 3, 10)])
  fig = plots.hidden_norm_curves({"sigmoid": runs, "relu": np.full(10, 0.5)}, title="t")
  (ax,) = fig.axes
  assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "t"
  assert ax.get_yscale() == "log"
  assert len(ax.lines) == 2
  # The 2-D entry draws the median over runs, with the min-max band behind it.
  np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(runs, axis=0))
  np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1, 11))
  assert len(ax.collections) == 1
  assert _legend_texts(ax) == ["sigmoid (median of 3)", "relu"]


def test_non_finite_values_are_gaps_not_errors():
  values = np.array([1.0, np.inf, np.nan, 0.0, 2.0])
  fig = plots.hidden_norm_curves({"overflow": values})
  y = fig.axes[0].lines[0].get_ydata()
  assert np.isnan(y[1:4]).all() and y[0] == 1.0 and y[4] == 2.0


def test_distance_curves_put_entry_k_at_its_distance():
  jn = 0.5 ** np.arange(6, 0, -1)  # entry k at distance 6 - k
  fig = plots.distance_curves({"gru": jn, "contrib": jn}, title="x")
  line = fig.axes[0].lines[0]
  np.testing.assert_array_equal(line.get_xdata(), [6, 5, 4, 3, 2, 1])
  assert fig.axes[0].get_yscale() == "log"
  assert "T - k" in fig.axes[0].get_xlabel()
  fig = plots.distance_curves({"contrib": jn}, start=0)
  np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [5, 4, 3, 2, 1, 0])
  assert "steps back" in fig.axes[0].get_xlabel()


def test_jacobian_heatmap_is_an_image_over_steps_and_batch():
  norms = np.exp(-np.arange(12.0))[:, None] * np.ones((12, 3))
  fig = plots.jacobian_heatmap(norms, title="LSTM")
  ax = fig.axes[0]
  (image,) = ax.images
  data = image.get_array()
  assert data.shape == (3, 12)  # batch rows, step columns
  np.testing.assert_allclose(data[0], np.log10(norms[:, 0]))
  assert len(fig.axes) == 2  # the colour bar
  assert "log" in fig.axes[1].get_ylabel()
  assert ax.get_xlabel() and ax.get_ylabel()
  with pytest.raises(ValueError, match="norms"):
    plots.jacobian_heatmap(np.ones(5))


def test_gate_histograms_one_panel_per_gate_and_fractions_sum_to_one():
  rng = np.random.default_rng(0)
  sig = rng.uniform(0.2, 0.8, 1000)
  relu = np.maximum(rng.normal(size=1000), 0)
  fig = plots.gate_histograms({"GRU z": {"sigmoid": sig, "relu": relu}, "GRU r": {"sigmoid": sig}})
  assert len(fig.axes) == 2
  ax = fig.axes[0]
  assert ax.get_title() == "GRU z" and ax.get_xlabel() == "gate value"
  assert _legend_texts(ax) == ["sigmoid", "relu"]
  # One step outline per gate function, heights as fractions of its values (at most 1).
  assert len(ax.patches) == 2
  heights = [p.get_path().vertices[:, 1] for p in ax.patches]
  assert all(0 < h.max() <= 1 for h in heights)
  # Reference lines at 0 and 1, the range of a sigmoid.
  assert sorted(line.get_xdata()[0] for line in ax.lines) == [0.0, 1.0]
  with pytest.raises(ValueError, match="panels"):
    plots.gate_histograms({})


def test_learning_curves_with_baseline():
  losses = np.stack([np.geomspace(1, 0.01, 50), np.geomspace(1, 0.1, 50)])
  fig = plots.learning_curves({"lstm": losses, "rnn": np.full(50, 0.17)}, baseline=1 / 6)
  ax = fig.axes[0]
  assert len(ax.lines) == 3
  assert ax.lines[-1].get_ydata()[0] == pytest.approx(1 / 6)
  assert _legend_texts(ax)[-1] == "baseline"
  assert ax.get_xlabel() == "training step" and "loss" in ax.get_ylabel()


def test_curves_reject_a_wrong_rank():
  with pytest.raises(ValueError, match="curves"):
    plots.hidden_norm_curves({"x": np.ones((2, 3, 4))})


def test_figures_leave_the_backend_to_the_user():
  before = matplotlib.get_backend()
  matplotlib.use("svg")
  try:
    plots.hidden_norm_curves({"a": np.linspace(1, 2, 5)})
    assert matplotlib.get_backend() == "svg"
  finally:
    matplotlib.use(before)


def test_the_command_selects_agg_for_itself_unless_mplbackend_says(monkeypatch):
  for given, expected in ((None, "Agg"), ("svg", "svg")):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if given is not None:
      env["MPLBACKEND"] = given
    monkeypatch.setattr(os, "environ", env)
    monkeypatch.setattr(cli, "main", lambda: 0)
    with pytest.raises(SystemExit) as exit_:
      cli.entry()
    assert exit_.value.code == 0 and env["MPLBACKEND"] == expected
