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


# ---------------------------------------------------------------------------
# Figures of the dynamics experiment
# ---------------------------------------------------------------------------


def _sweep_line(
  ax: Any, x: Any, y: Any, ok: Any | None, failed_at: float | None, **style: Any
) -> tuple[Any, bool]:
  """One line of sweep counts; runs that did not converge are crosses, drawn at ``failed_at``
  (the cap) when given, else at their own count. Returns the line and whether one failed."""
  import numpy as np

  x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
  failed = np.zeros(y.shape, bool) if ok is None else ~np.asarray(ok, dtype=bool)
  if failed.shape != y.shape:
    raise ValueError(f"converged must have the shape of the sweeps, {y.shape}, got {failed.shape}")
  if failed_at is not None:
    y = np.where(failed, failed_at, y)
  (line,) = ax.plot(x, y, marker="o", **style)
  if failed.any():
    ax.plot(
      x[failed], y[failed], linestyle="none", marker="x", markersize=10, color=line.get_color()
    )
  return line, bool(failed.any())


def _plain_log_ticks(axis: Any) -> None:
  """Ticks at 1, 2, 5 × 10^k on a log axis, written as plain numbers."""
  from matplotlib import ticker

  axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
  axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
  axis.set_minor_formatter(ticker.NullFormatter())


def _failure_legend(ax: Any, failed_at: float | None) -> None:
  where = " (drawn at the cap)" if failed_at is not None else ""
  ax.plot([], [], linestyle="none", marker="x", color="black", label=f"not converged{where}")


def lyapunov_sweep(
  gains: Any,
  lyapunov: Any,
  sweeps: Mapping[str, Any],
  *,
  converged: Mapping[str, Any] | None = None,
  log_rho: Any | None = None,
  crossing: float | None = None,
  max_iter: int | None = None,
  failed_at: float | None = None,
  title: str | None = None,
) -> Any:
  r"""The edge of chaos: :math:`\lambda_{\max}` and the Newton sweeps against a gain, two panels.

  Top: the largest Lyapunov exponent against the gain ``g`` (and, if given, the
  gradient contributions' fitted :math:`\log\rho`, which theory puts on the same line),
  with 0 and the crossing marked. Bottom: the sweeps :func:`gatejax.parallel_scan` needed,
  one line per sequence length, on a log scale; a run that did not converge is a cross.

  Args:
    gains: ``(G,)`` the gains.
    lyapunov: ``(G,)`` :math:`\lambda_{\max}` per gain (natural log per step).
    sweeps: label (``"T = 1,000"``) -> ``(G,)`` sweeps per gain.
    converged: label -> ``(G,)`` booleans; ``False`` points are drawn as crosses.
    log_rho: ``(G,)`` :math:`\log\rho` of the gradient contributions, or ``None``.
    crossing: the gain where :math:`\lambda_{\max}` crosses 0, drawn as a vertical line.
    max_iter: the sweep cap, drawn as a dotted line.
    failed_at: draw the runs that did not converge at this height (the cap) rather than at
      their sweep count (a run stopped by an overflow after one sweep is not fast).
    title: an optional title.

  Returns:
    A ``matplotlib.figure.Figure`` with two axes sharing the horizontal one.

  Example:
    >>> import numpy as np
    >>> g = np.array([0.5, 1.0, 2.0])
    >>> fig = lyapunov_sweep(g, np.log(g) - 0.1, {"T = 100": [3, 5, 60]},
    ...                      converged={"T = 100": [True, True, False]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['$\\lambda_{\\max}$ (per step)', 'Newton sweeps']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np

  g = np.asarray(gains, dtype=np.float64)
  lam = np.asarray(lyapunov, dtype=np.float64)
  if g.ndim != 1 or lam.shape != g.shape:
    raise ValueError(
      f"gains and lyapunov must have the same shape (G,), got {g.shape} and {lam.shape}"
    )
  plt = _pyplot()
  fig, (top, bottom) = plt.subplots(
    2, 1, figsize=(6.4, 6.0), sharex=True, layout="constrained", height_ratios=(1, 1.2)
  )
  top.plot(g, lam, marker="o", label=r"$\lambda_{\max}$ (Lyapunov, QR/tangent method)")
  if log_rho is not None:
    top.plot(
      g,
      np.asarray(log_rho, dtype=np.float64),
      marker="s",
      linestyle="--",
      label=r"$\log\rho$ (decay of gradient contributions)",
    )
  top.axhline(0.0, color="black", linewidth=0.8)
  for ax in (top, bottom):
    if crossing is not None:
      ax.axvline(
        crossing,
        color="grey",
        linestyle=":",
        linewidth=1.2,
        label=rf"$\lambda_{{\max}} = 0$ at $g \approx {crossing:.2f}$",
      )
    ax.grid(True, alpha=0.3)
  top.set_ylabel(r"$\lambda_{\max}$ (per step)")
  top.legend(fontsize="small")
  failed_any = False
  for label, values in sweeps.items():
    y = np.asarray(values, dtype=np.float64)
    if y.shape != g.shape:
      raise ValueError(f"sweeps[{label!r}] must have shape {g.shape}, got {y.shape}")
    ok = None if converged is None else converged[label]
    _, failed = _sweep_line(bottom, g, y, ok, failed_at, label=label)
    failed_any |= failed
  if max_iter is not None:
    bottom.axhline(max_iter, color="black", linestyle=":", linewidth=1, label=f"cap ({max_iter})")
  if failed_any:
    _failure_legend(bottom, failed_at)
  bottom.set_yscale("log")
  _plain_log_ticks(bottom.yaxis)
  bottom.set_xlabel("gain $g$ of $W_h = g\\,N(0, 1/H)$")
  bottom.set_ylabel("Newton sweeps")
  bottom.legend(fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


def sweeps_against_length(
  panels: Mapping[str, Mapping[str, Mapping[str, tuple[Any, Any, Any]]]],
  *,
  max_iter: int | None = None,
  failed_at: float | None = None,
  title: str | None = None,
) -> Any:
  """Newton sweeps against the sequence length ``T`` (log-log), one panel per method.

  Each cell is one colour; its series (``"init"``, ``"trained"``) are drawn dashed, solid,
  dotted, in the order given. A run that did not converge is a cross.

  Args:
    panels: panel title (``"DEER"``) -> cell label -> series label -> ``(times, sweeps,
      converged)``, three sequences of the same length.
    max_iter: the sweep cap, drawn as a dotted line.
    failed_at: draw the runs that did not converge at this height (the cap).
    title: an optional figure title.

  Returns:
    A ``matplotlib.figure.Figure`` with one axis per panel.

  Example:
    >>> fig = sweeps_against_length(
    ...   {"DEER": {"GRU": {"init": ([100, 1000], [4, 4], [True, True]),
    ...                     "trained": ([100, 1000], [6, 9], [True, False])}}})
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_xlabel()
    ('log', 'sequence length $T$')
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import numpy as np
  from matplotlib import ticker

  if not panels:
    raise ValueError("panels must not be empty")
  plt = _pyplot()
  fig, axes = plt.subplots(
    1, len(panels), figsize=(5.0 * len(panels), 5.2), layout="constrained", squeeze=False
  )
  styles = ("--", "-", ":", "-.")
  for ax, (name, cells) in zip(axes[0], panels.items(), strict=True):
    failed_any = False
    for label, series in cells.items():
      color = None
      for k, (state, (times, sweeps, ok)) in enumerate(series.items()):
        t = np.asarray(times, dtype=np.float64)
        y = np.asarray(sweeps, dtype=np.float64)
        if t.shape != y.shape or t.ndim != 1:
          raise ValueError(
            f"panels[{name!r}][{label!r}][{state!r}]: times and sweeps must be 1-D of one "
            f"length, got {t.shape} and {y.shape}"
          )
        line, failed = _sweep_line(
          ax,
          t,
          y,
          ok,
          failed_at,
          markersize=4,
          linestyle=styles[k % len(styles)],
          color=color,
          label=f"{label}, {state}",
        )
        color = line.get_color()
        failed_any |= failed
    if max_iter is not None:
      ax.axhline(max_iter, color="black", linestyle=":", linewidth=1, label=f"cap ({max_iter})")
    if failed_any:
      _failure_legend(ax, failed_at)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    times = sorted({float(t) for series in cells.values() for c in series.values() for t in c[0]})
    ax.set_xticks(times, [f"{t:,.0f}" for t in times])
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("sequence length $T$")
    ax.set_ylabel("Newton sweeps to converge")
    ax.set_title(name)
    ax.grid(True, which="major", alpha=0.3)
  # One legend for every panel (same cells, same colours), below them.
  entries: dict[str, Any] = {}
  for ax in axes[0]:
    for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
      entries.setdefault(text, handle)
  fig.legend(
    list(entries.values()),
    list(entries),
    loc="outside lower center",
    ncols=min(4, len(entries)),
    fontsize="small",
  )
  if title:
    fig.suptitle(title)
  return fig
