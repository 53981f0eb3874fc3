"""Figures with matplotlib, imported only when a figure is drawn.

Every function returns a ``matplotlib.figure.Figure`` (it never calls ``plt.show``),
with labelled axes, units and a legend, so notebooks display it and the report saves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _pyplot() -> Any:
  """matplotlib.pyplot, imported on first use.

  The backend is the user's: ``MPLBACKEND``, a notebook's inline backend, or matplotlib's
  own choice (Agg where there is no display). The ``gatejax`` command selects Agg for
  itself (:func:`gatejax.cli.entry`); a library call never switches it.
  """
  import matplotlib.pyplot as plt

  return plt


# ---------------------------------------------------------------------------
# Figures of the gate experiment, the training runs and the report
# ---------------------------------------------------------------------------


def _finite_positive(values: Any) -> Any:
  """``values`` as float64 NumPy with non-finite and non-positive entries as NaN (gaps on a log axis)."""
  import numpy as np

  a = np.asarray(values, dtype=np.float64)
  return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _band_curves(
  ax: Any, curves: Mapping[str, Any], x_of: Callable[[int], Any], *, log: bool
) -> None:
  """One line per entry; a 2-D entry ``(runs, n)`` draws its median and a min-max band.

  The median, not the mean, because a single exploding run must not drag the line away
  from what the other runs do; the band still shows it.
  """
  import numpy as np

  for label, values in curves.items():
    a = _finite_positive(values) if log else np.asarray(values, dtype=np.float64)
    if a.ndim not in (1, 2):
      raise ValueError(f"curves[{label!r}] must be 1-D (n,) or 2-D (runs, n), got shape {a.shape}")
    x = x_of(a.shape[-1])
    if a.ndim == 1:
      ax.plot(x, a, label=label)
      continue
    # Columns where every run is NaN are gaps, not warnings.
    rows = np.where(np.isnan(a), -np.inf, a).max(axis=0)
    finite = np.isfinite(rows)
    median = np.full(a.shape[-1], np.nan)
    low = np.full(a.shape[-1], np.nan)
    high = np.full(a.shape[-1], np.nan)
    if finite.any():
      median[finite] = np.nanmedian(a[:, finite], axis=0)
      low[finite] = np.nanmin(a[:, finite], axis=0)
      high[finite] = np.nanmax(a[:, finite], axis=0)
    (line,) = ax.plot(x, median, label=f"{label} (median of {a.shape[0]})")
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
  if log:
    ax.set_yscale("log")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize="small")


def hidden_norm_curves(
  curves: Mapping[str, Any],
  *,
  ylabel: str = r"RMS of $h_t$ over units",
  title: str | None = None,
  log: bool = True,
) -> Any:
  """The size of the hidden state against time, one line per configuration.

  Args:
    curves: label -> values of shape ``(time,)`` or ``(runs, time)`` (seeds); a 2-D entry
      is drawn as its median with a min-max band. Non-finite values (a run that
      overflowed) are left out of the line.
    ylabel: the quantity on the vertical axis.
    title: an optional title.
    log: a logarithmic vertical axis, so growth by a constant factor per step is a line.

  Returns:
    A ``matplotlib.figure.Figure``.

  Example:
    >>> import numpy as np
    >>> fig = hidden_norm_curves({"sigmoid": np.ones((2, 5))})
    >>> fig.axes[0].get_xlabel()
    'time step $t$'
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
  _band_curves(ax, curves, lambda n: range(1, n + 1), log=log)
  ax.set_xlabel("time step $t$")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  return fig


def distance_curves(
  curves: Mapping[str, Any],
  *,
  ylabel: str = r"$\|\partial c_T / \partial c_k\|_2$",
  title: str | None = None,
  start: int = 1,
  xlabel: str | None = None,
) -> Any:
  r"""A norm against the distance from the end of the sequence, on a log scale.

  Args:
    curves: label -> values indexed by step, time first (as
      :func:`gatejax.analysis.jacobian_norms` and
      :func:`gatejax.analysis.contribution_norms` return them), shape ``(time,)`` or
      ``(runs, time)``; the last entry is drawn at ``start`` and entry ``k`` at
      ``time - 1 - k + start``.
    ylabel: the quantity on the vertical axis.
    title: an optional title.
    start: the distance of the last entry: 1 for Jacobian norms (entry ``k`` at
      ``T - k``), 0 for per-step contributions (step ``t`` at ``T - 1 - t`` steps back).
    xlabel: the horizontal axis label; by default it names the distance ``start`` implies.

  Returns:
    A ``matplotlib.figure.Figure``; a straight line means a constant factor per step.

  Example:
    >>> import numpy as np
    >>> fig = distance_curves({"gru": 0.5 ** np.arange(10, 0, -1)})
    >>> fig.axes[0].get_yscale()
    'log'
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
  _band_curves(ax, curves, lambda n: range(n - 1 + start, start - 1, -1), log=True)
  if xlabel is None:
    xlabel = (
      "distance from the end $T - k$ (steps)"
      if start == 1
      else f"steps back from the last step (+{start})"
      if start
      else "steps back from the last step"
    )
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  return fig


def jacobian_heatmap(
  norms: Any,
  *,
  title: str | None = None,
  label: str = r"$\log_{10} \|\partial c_T / \partial c_k\|_2$",
) -> Any:
  r"""A heatmap of :math:`\log_{10}\|\partial c_T/\partial c_k\|` over step ``k`` and batch element.

  Args:
    norms: shape ``(time, batch)``, as :func:`gatejax.analysis.jacobian_norms` returns for
      one batch axis. Zeros and non-finite values show as blank cells.
    title: an optional title.
    label: the colour bar's label.

  Returns:
    A ``matplotlib.figure.Figure`` with one image and a colour bar.

  Example:
    >>> import numpy as np
    >>> fig = jacobian_heatmap(np.ones((6, 3)))
    >>> len(fig.axes[0].images)
    1
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np

  a = _finite_positive(norms)
  if a.ndim != 2:
    raise ValueError(f"norms must have shape (time, batch), got {a.shape}")
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
  logs = np.log10(a).T
  image = ax.imshow(
    logs,
    aspect="auto",
    origin="lower",
    interpolation="nearest",
    cmap="viridis",
    extent=(-0.5, a.shape[0] - 0.5, -0.5, a.shape[1] - 0.5),
  )
  fig.colorbar(image, ax=ax, label=label)
  ax.set_xlabel("step $k$ (the end is $T$)")
  ax.set_ylabel("sequence in the batch")
  if title:
    ax.set_title(title)
  return fig


def gate_histograms(
  panels: Mapping[str, Mapping[str, Any]],
  *,
  bins: int = 60,
  title: str | None = None,
  ncols: int = 3,
) -> Any:
  """Histograms of gate values, one panel per gate, one outline per gate function.

  Values are binned over ``[min(0, q_0.5%), max(1.2, q_99.5%)]``, so ReLU gates above 1
  stay visible; dashed lines mark 0 and 1, the range a sigmoid gate lives in.

  Args:
    panels: panel title (``"GRU z"``) -> label (``"relu"``) -> gate values (any shape).
    bins: number of bins.
    title: an optional figure title.
    ncols: panels per row.

  Returns:
    A ``matplotlib.figure.Figure`` with one axis per panel.

  Example:
    >>> import numpy as np
    >>> fig = gate_histograms({"GRU z": {"sigmoid": np.linspace(0.1, 0.9, 50)}})
    >>> fig.axes[0].get_xlabel()
    'gate value'
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np

  if not panels:
    raise ValueError("panels must not be empty")
  plt = _pyplot()
  ncols = min(ncols, len(panels))
  nrows = -(-len(panels) // ncols)
  fig, axes = plt.subplots(
    nrows, ncols, figsize=(3.6 * ncols, 3.2 * nrows), layout="constrained", squeeze=False
  )
  for ax in axes.ravel()[len(panels) :]:
    ax.remove()
  for ax, (name, by_label) in zip(axes.ravel(), panels.items(), strict=False):
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in by_label.items()}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items()}
    pooled = np.concatenate([v for v in arrays.values() if v.size] or [np.zeros(1)])
    low = min(0.0, float(np.quantile(pooled, 0.005)))
    high = max(1.2, float(np.quantile(pooled, 0.995)))
    edges = np.linspace(low, high, bins + 1)
    for label, v in arrays.items():
      weights = np.full(v.shape, 1.0 / max(v.size, 1))
      ax.hist(np.clip(v, low, high), bins=edges, weights=weights, histtype="step", label=label)
    for bound in (0.0, 1.0):
      ax.axvline(bound, color="grey", linestyle="--", linewidth=0.8)
    ax.set_title(name)
    ax.set_xlabel("gate value")
    ax.set_ylabel("fraction of values")
    ax.legend(fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


def learning_curves(
  curves: Mapping[str, Any],
  *,
  baseline: float | None = None,
  baseline_label: str = "baseline",
  ylabel: str = "training loss (MSE)",
  title: str | None = None,
  log: bool = True,
) -> Any:
  """Loss against training step, one line (or median and band over seeds) per run.

  Args:
    curves: label -> losses of shape ``(steps,)`` or ``(runs, steps)``; non-finite
      values (a diverged run) end the line.
    baseline: the loss of the trivial predictor, drawn as a dashed horizontal line.
    baseline_label: its legend entry.
    ylabel: the loss and its unit.
    title: an optional title.
    log: a logarithmic vertical axis.

  Returns:
    A ``matplotlib.figure.Figure``.

  Example:
    >>> import numpy as np
    >>> fig = learning_curves({"lstm": np.linspace(1.0, 0.1, 20)}, baseline=0.167)
    >>> len(fig.axes[0].lines)
    2
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
  _band_curves(ax, curves, lambda n: range(1, n + 1), log=log)
  if baseline is not None:
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=baseline_label)
    ax.legend(fontsize="small")
  ax.set_xlabel("training step")
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  return fig


def before_after_curves(
  before: Mapping[str, Any],
  after: Mapping[str, Any],
  *,
  normalize: bool = True,
  fraction: float | None = 0.01,
  ylabel: str | None = None,
  title: str | None = None,
) -> Any:
  r"""Per-step gradient contributions before (dashed) and after (solid) training, by steps back.

  One colour per cell. Step ``t`` of a ``T``-step curve is drawn at ``T - 1 - t`` steps
  back, as :func:`contribution_curves` does.

  Args:
    before, after: label -> ``(T,)`` per-step norms, time first
      (:func:`gatejax.analysis.contribution_norms`), with the same labels.
    normalize: divide each curve by its own peak, so that the shapes compare even though
      training shrinks the loss and with it every contribution.
    fraction: with ``normalize``, draw this fraction of the peak as a dotted line (the
      threshold of :func:`gatejax.analysis.gradient_horizon`); ``None`` for none.
    ylabel: the vertical axis label (a default names the normalisation).
    title: an optional title.

  Returns:
    A ``matplotlib.figure.Figure`` with two lines per label.

  Example:
    >>> import numpy as np
    >>> fig = before_after_curves({"gru": 0.5 ** np.arange(9.0)[::-1]}, {"gru": np.ones(9)})
    >>> [line.get_linestyle() for line in fig.axes[0].lines[:2]]
    ['--', '-']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np

  if set(before) != set(after):
    raise ValueError(
      f"before and after must have the same labels, got {set(before)} and {set(after)}"
    )
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
  for label in before:
    color = None
    for when, values, style in (("before", before[label], "--"), ("after", after[label], "-")):
      back = _finite_positive(values)[::-1]
      if back.ndim != 1:
        raise ValueError(f"{when}[{label!r}] must be 1-D (T,), got shape {back.shape}")
      if normalize and np.isfinite(back).any():
        back = back / np.nanmax(back)
      (line,) = ax.plot(
        np.arange(back.size), back, linestyle=style, color=color, label=f"{label}, {when}"
      )
      color = line.get_color()
  if normalize and fraction is not None:
    ax.axhline(
      fraction, color="grey", linestyle=":", linewidth=1, label=f"{fraction:g} of the peak"
    )
  ax.set_yscale("log")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small")
  ax.set_xlabel("steps back from the last step")
  default = r"$\|g_t\|$ / its peak" if normalize else r"$\|g_t\|$"
  ax.set_ylabel(ylabel or default)
  if title:
    ax.set_title(title)
  return fig


def contribution_curves(
  curves: Mapping[str, Any],
  *,
  normalize: bool = True,
  fraction: float | None = 0.01,
  title: str | None = None,
) -> Any:
  r"""Each step's gradient contribution against how many steps back it lies, on a log scale.

  Step ``t`` of a ``T``-step sequence is drawn at ``T - 1 - t`` steps back, so the last step
  sits at 0 and a contribution that shrinks by a constant factor per step is a straight line.

  Args:
    curves: label -> ``(T,)`` per-step norms, time first, as
      :func:`gatejax.analysis.contribution_norms` returns them. Zero entries (underflowed)
      are gaps.
    normalize: divide each curve by its peak, so curves of different scales compare.
    fraction: draw this fraction of the peak as a dashed line (the threshold of
      :func:`gatejax.analysis.gradient_horizon`); ``None`` for none. Only with ``normalize``.
    title: an optional title.

  Returns:
    A ``matplotlib.figure.Figure``.

  Example:
    >>> import numpy as np
    >>> fig = contribution_curves({"rnn": 0.6 ** np.arange(50.0)[::-1]})
    >>> fig.axes[0].get_yscale(), fig.axes[0].get_xlabel()
    ('log', 'steps back from the last step')
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np

  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
  for label, values in curves.items():
    back = np.asarray(values, dtype=np.float64)[::-1]
    if back.ndim != 1:
      raise ValueError(f"curves[{label!r}] must be 1-D (T,), got shape {back.shape}")
    if normalize and np.nanmax(back, initial=0.0) > 0:
      back = back / np.nanmax(back)
    ax.plot(np.arange(back.size), _finite_positive(back), label=label)
  if normalize and fraction is not None:
    ax.axhline(fraction, color="black", linestyle="--", linewidth=1, label=f"{fraction:g} of peak")
  ax.set_yscale("log")
  ax.set_xlabel("steps back from the last step")
  ax.set_ylabel(r"$\|g_t\|$ / peak" if normalize else r"$\|g_t\|$ (per-step contribution)")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize="small")
  if title:
    ax.set_title(title)
  return fig
