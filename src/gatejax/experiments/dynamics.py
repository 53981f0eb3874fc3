r"""Dynamics: how fast a cell forgets, measured three ways, and what it costs to run it in parallel.

For every cell, at initialisation and after training on the adding problem
(:func:`gatejax.tasks.adding`, with :func:`gatejax.train.fit`), on one fixed probe batch:

* the **largest Lyapunov exponent** :math:`\lambda_{\max}`
  (:func:`gatejax.dynamics.largest_lyapunov_exponent`, natural log per step, averaged over
  the probe's sequences after a transient of a tenth of the steps): below 0 a perturbation
  of the carry shrinks by :math:`e^{\lambda_{\max}}` per step, above 0 it grows (chaos);
* the **gradient horizon** and the fitted per-step **decay factor** :math:`\rho` of the
  contribution norms :math:`\lVert g_t \rVert` (:func:`gatejax.analysis.contribution_norms`,
  :func:`~gatejax.analysis.gradient_horizon`, :func:`~gatejax.analysis.decay_rate`) of the
  training loss;
* the **Newton sweeps** of :func:`gatejax.parallel_scan` (``"deer"`` and ``"quasi"``) to
  reach its tolerance at several lengths ``T`` on the task's inputs, capped at
  ``max_iter``; a run that did not converge (``info.converged``) is reported as such.

Theory, stated so that the numbers can test it: the contribution of the step ``d`` steps
back reaches the loss through the ``d`` step Jacobians after it,
:math:`\lVert g_{T-1-d} \rVert \approx \lVert \bar\ell\, J_{T-1} \cdots J_{T-d}\, \partial_\theta f \rVert`,
and a product of ``d`` Jacobians grows or shrinks as :math:`e^{\lambda_{\max} d}`, so

.. math:: \log \rho \approx \lambda_{\max}.

Both measure the mean log-contraction per step along the dominant direction; they differ
because the contributions also carry the read-out and each step's parameter Jacobian
:math:`\partial_\theta f` (not constant along the sequence), are fitted over the whole
curve of one batch-summed loss, and :math:`\lambda_{\max}` is an average over the
trajectory of each sequence. The experiment reports :math:`\log\rho` beside
:math:`\lambda_{\max}` for every cell and every point of the sweep below.

Predictability (Gonzalez et al., "Predictability enables parallelization of nonlinear
state space models", 2025): with :math:`\lambda_{\max} < 0` Newton's method over the whole
sequence (DEER) converges in a number of sweeps that barely grows with ``T``; with
:math:`\lambda_{\max} > 0` its linear solves amplify errors by up to
:math:`e^{\lambda_{\max} T}` and the sweeps grow towards ``T`` (each sweep is only
guaranteed to fix one more step). The **edge of chaos** sweep reproduces this on a tanh RNN
with :math:`W_h = g\,N`, :math:`N_{ij} \sim \mathcal N(0, 1/H)`, zero bias and weak
Gaussian inputs, over gains ``g`` from 0.5 to 3: :math:`\lambda_{\max}` crosses 0 near
``g = 1`` (a little above: the inputs stabilise), and the sweeps go from flat in ``T`` to
growing with it or failing.

Cells linear in their carry (minGRU, minLSTM) offer ``affine`` and are solved by
one associative scan: one sweep at every ``T``, exactly.

Example:
  >>> from gatejax.experiments import dynamics
  >>> dynamics.QUICK.cells, dynamics.QUICK.times
  (('lstm', 'min_gru'), (20, 100))
  >>> dynamics.length_groups((100, 1000, 10_000))    # lengths that share one solve
  ((100, 1000), (10000,))

  The whole experiment: ``result = dynamics.run(dynamics.QUICK, key=jax.random.key(0))``,
  then ``print(dynamics.to_markdown(result))``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import gatejax as gj
from gatejax import _format, analysis, tasks
from gatejax._jit import bounded_jit
from gatejax.experiments import horizon

__all__ = [
  "FULL",
  "KINDS",
  "METHODS",
  "NAMES",
  "QUICK",
  "CellRun",
  "GainPoint",
  "Measurement",
  "Result",
  "Sizes",
  "Sweeps",
  "Trained",
  "agreement",
  "cell_table",
  "classify",
  "crossing",
  "dynamics_cell",
  "figures",
  "findings",
  "length_groups",
  "lyapunov_and_decay",
  "method_name",
  "run",
  "sweep_table",
  "to_json",
  "to_markdown",
]

#: The cells the experiment measures, by the names of their factories.
KINDS = ("rnn", "gru", "lstm", "mgu", "minimal_rnn", "min_gru", "min_lstm")
#: How the tables and figures name each cell.
NAMES = {
  "rnn": "RNN",
  "gru": "GRU",
  "lstm": "LSTM",
  "mgu": "MGU",
  "minimal_rnn": "minimalRNN",
  "min_gru": "minGRU",
  "min_lstm": "minLSTM",
}
#: The Newton methods of :func:`gatejax.parallel_scan` whose sweeps are counted.
METHODS = ("deer", "quasi")
STATES = ("init", "trained")
# The horizon's threshold (a fraction of the peak contribution), as the horizon experiment.
FRACTION = 0.01


class Sizes(NamedTuple):
  """Sizes of the experiment.

  The training fields equal :class:`gatejax.experiments.horizon.HorizonSizes`'s (``FULL``
  those of its defaults, ``QUICK`` of its quick sizes), so that with the same key the
  runs of RNN, GRU and LSTM are the horizon experiment's and the report trains them once.

  Attributes:
    cells: cells among :data:`KINDS`.
    hidden: hidden units of every cell.
    train_time: length of the adding problem the cells train on (and of the probe batch).
    train_batch: sequences per training step.
    train_steps: optimiser steps per cell.
    learning_rate: Adam's learning rate.
    clip_norm: gradient clipping by global norm.
    probe_batch: sequences of the probe batch (λ, contributions).
    times: sequence lengths of the Newton runs (the adding problem's inputs at that length).
    newton_batch: sequences per length.
    max_iter: the most Newton sweeps per run (a run that needs more is not converged).
    quasi_max_time: quasi-DEER runs only at lengths up to this (it needs ten times DEER's
      sweeps, each as costly in Jacobian products).
    longest_cells: the cells that also run at the longest length, ``max(times)``. A cell
      linear in its carry (one associative scan) runs at every length with both methods.
    gains: the gains ``g`` of the edge-of-chaos sweep.
    sweep_hidden: hidden units of the sweep's tanh RNN.
    sweep_batch: sequences on which the sweep measures λ and the contributions.
    sweep_time: their length.
    input_scale: standard deviation of the sweep's Gaussian inputs.
  """

  cells: tuple[str, ...] = KINDS
  hidden: int = 32
  train_time: int = 100
  train_batch: int = 64
  train_steps: int = 600
  learning_rate: float = 1e-2
  clip_norm: float = 1.0
  probe_batch: int = 64
  times: tuple[int, ...] = (100, 1000, 10_000)
  newton_batch: int = 1
  max_iter: int = 100
  quasi_max_time: int = 100
  longest_cells: tuple[str, ...] = ("min_gru", "min_lstm")
  gains: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
  sweep_hidden: int = 64
  sweep_batch: int = 4
  sweep_time: int = 200
  input_scale: float = 0.1


#: The sizes of ``gatejax report`` (about 75 s of it on two quiet CPU cores).
FULL = Sizes()
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = Sizes(
  cells=("lstm", "min_gru"),
  hidden=8,
  train_time=20,
  train_batch=16,
  train_steps=40,
  probe_batch=8,
  times=(20, 100),
  newton_batch=1,
  max_iter=50,
  quasi_max_time=100,
  longest_cells=("lstm", "min_gru"),
  gains=(0.5, 3.0),
  sweep_hidden=32,
  sweep_batch=2,
  sweep_time=60,
)


class Trained(NamedTuple):
  """A model already trained with the experiment's sizes and key (the horizon experiment's).

  Attributes:
    params: the trained :class:`gatejax.train.ModelParams`.
    final_eval: its last evaluation loss (``nan`` if the run diverged).
    contributions: ``(before, after)`` contribution norms on the experiment's probe batch,
      if already measured (:func:`gatejax.experiments.horizon.probe_model`), else ``None``.
  """

  params: Any
  final_eval: float
  contributions: tuple[np.ndarray, np.ndarray] | None = None


class Sweeps(NamedTuple):
  """Newton sweeps of :func:`gatejax.parallel_scan`, per length and sequence.

  Attributes:
    times: the lengths ``T``.
    iterations: ``(len(times), batch)`` sweeps (``info.iterations``).
    converged: ``(len(times), batch)`` ``info.converged``.
    max_iter: the cap.
  """

  times: tuple[int, ...]
  iterations: np.ndarray
  converged: np.ndarray
  max_iter: int

  def at(self, time: int) -> tuple[int, str] | None:
    """``(most sweeps over the batch, outcome)`` at ``time``, or ``None`` if not run.

    The outcome is ``"converged"`` (every sequence), ``"overflow"`` (a sequence stopped
    before the cap: :func:`gatejax.parallel_scan` ends a run whose sweep overflows) or
    ``"cap"`` (a sequence ran ``max_iter`` sweeps without converging).
    """
    if time not in self.times:
      return None
    i = self.times.index(time)
    its, conv = self.iterations[i], self.converged[i]
    if conv.all():
      outcome = "converged"
    elif ((~conv) & (its < self.max_iter)).any():
      outcome = "overflow"
    else:
      outcome = "cap"
    return int(its.max()), outcome

  def curve(self) -> tuple[list[int], list[int], list[bool]]:
    """``(times, most sweeps over the batch, every sequence converged)``, per length."""
    return (
      list(self.times),
      [int(v) for v in np.max(self.iterations, axis=1)],
      [bool(v) for v in np.all(self.converged, axis=1)],
    )

  def outcomes(self) -> list[str]:
    """The outcome of :meth:`at` at each length."""
    return [entry[1] for t in self.times if (entry := self.at(t)) is not None]


def _log_factor(rate: float) -> float:
  """``log(rate)``; NaN where no decay rate could be fitted (``rate <= 0``)."""
  return math.log(rate) if rate > 0 else math.nan


class Measurement(NamedTuple):
  """One cell in one state (initialisation or trained).

  Attributes:
    lyapunov: ``(probe_batch,)`` λ_max per probe sequence (natural log per step).
    contributions: ``(train_time,)`` contribution norms of the training loss on the probe.
    horizon: :func:`gatejax.analysis.gradient_horizon` at 1% of the peak, in steps.
    decay_rate: ρ, :func:`gatejax.analysis.decay_rate` of the contributions.
    newton: method -> :class:`Sweeps`.
  """

  lyapunov: np.ndarray
  contributions: np.ndarray
  horizon: int
  decay_rate: float
  newton: dict[str, Sweeps]

  @property
  def lam(self) -> float:
    """λ_max averaged over the sequences measured."""
    return float(np.mean(self.lyapunov))

  @property
  def log_rho(self) -> float:
    """:math:`\\log\\rho`, the contributions' fitted log-factor per step back."""
    return _log_factor(self.decay_rate)


class CellRun(NamedTuple):
  """A cell at initialisation and after training.

  Attributes:
    name: the display name (``"GRU"``).
    linear: the cell is linear in its carry (offers ``affine``).
    init, trained: the two :class:`Measurement`.
    final_eval: the trained model's last evaluation loss (``nan`` if it diverged).
    trained_by: ``"horizon"`` when the model came from the horizon experiment, else
      ``"dynamics"``.
  """

  name: str
  linear: bool
  init: Measurement
  trained: Measurement
  final_eval: float
  trained_by: str


class GainPoint(NamedTuple):
  """One gain of the edge-of-chaos sweep.

  Attributes:
    gain: ``g``.
    lyapunov: ``(sweep_batch,)`` λ_max per sequence.
    decay_rate: ρ of the contributions of :math:`L = \\sum_b \\lVert y_T \\rVert^2`.
    newton: the DEER :class:`Sweeps`.
  """

  gain: float
  lyapunov: np.ndarray
  decay_rate: float
  newton: Sweeps

  lam = Measurement.lam
  log_rho = Measurement.log_rho


class Result(NamedTuple):
  """What :func:`run` measured."""

  sizes: Sizes
  baseline: float
  cells: dict[str, CellRun]
  sweep: tuple[GainPoint, ...]


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def dynamics_cell(kind: str, hidden: int) -> Any:
  """The default cell of a kind; cached, and the horizon experiment's for RNN, GRU and LSTM."""
  if kind in horizon.KINDS:
    return horizon.horizon_cell(kind, hidden)
  factories = {
    "mgu": gj.mgu,
    "minimal_rnn": gj.minimal_rnn,
    "min_gru": gj.min_gru,
    "min_lstm": gj.min_lstm,
  }
  if kind not in factories:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  return factories[kind](hidden)


def length_groups(times: Sequence[int]) -> tuple[tuple[int, ...], ...]:
  """The lengths, ascending, in groups that share one padded Newton solve.

  A group runs as one call of :func:`gatejax.parallel_scan` padded to its longest length
  (``lengths`` masks the rest, which changes no sweep count): one compilation instead of
  several, as long as padding at most doubles the work (``len(group) * max(group) <= 2 *
  sum(group)``).
  """
  groups: list[tuple[int, ...]] = []
  current: tuple[int, ...] = ()
  for t in sorted(set(times)):
    trial = (*current, t)
    if current and len(trial) * t > 2 * sum(trial):
      groups.append(current)
      current = (t,)
    else:
      current = trial
  if current:
    groups.append(current)
  return tuple(groups)


def _newton(
  cell: Any,
  params: Any,
  inputs: Mapping[int, Array],
  times: Sequence[int],
  method: str,
  max_iter: int,
) -> Sweeps:
  """Sweeps at each length; ``inputs[T]`` is ``(T, batch, input)``.

  A cell linear in its carry is one associative scan whatever the method and the length,
  so all its lengths share one padded solve (one compilation for both methods).
  """
  iterations, converged = {}, {}
  groups = (tuple(sorted(set(times))),) if _linear(cell) else length_groups(times)
  for group in groups:
    longest = max(group)
    batch = inputs[group[0]].shape[1]
    xs = jnp.concatenate(
      [jnp.pad(inputs[t], ((0, longest - t), (0, 0), (0, 0))) for t in group], axis=1
    )
    lengths = jnp.repeat(jnp.asarray(group, jnp.int32), batch)
    _, _, info = gj.parallel_scan(
      cell, params, xs, method=method, max_iter=max_iter, lengths=lengths
    )
    its = np.asarray(info.iterations).reshape(len(group), batch)
    conv = np.asarray(info.converged).reshape(len(group), batch)
    for i, t in enumerate(group):
      iterations[t], converged[t] = its[i], conv[i]
  order = tuple(sorted(iterations))
  return Sweeps(
    times=order,
    iterations=np.stack([iterations[t] for t in order]).astype(np.int64),
    converged=np.stack([converged[t] for t in order]),
    max_iter=max_iter,
  )


@bounded_jit(static_argnames=("cell", "task"))
def _task_contributions(cell: Any, task: tasks.Task, params: Any, batch: tasks.Batch) -> Array:
  """Contribution norms of the task's own loss through the readout, as the horizon experiment."""
  readout = params.readout

  def loss(ys: Array, carry: Any) -> Array:
    last = ys[-1] @ readout.w + jnp.reshape(readout.b, (1, -1))
    return task.loss(last, batch)

  return analysis.contribution_norms(cell, params.cell, batch.xs, loss)


def _last_output_loss(ys: Array, carry: Any) -> Array:
  return jnp.sum(ys[-1] ** 2)


@bounded_jit(static_argnames=("cell",))
def _output_contributions(cell: Any, params: Any, xs: Array) -> Array:
  return analysis.contribution_norms(cell, params, xs, _last_output_loss)


def _summaries(norms: np.ndarray) -> tuple[int, float]:
  """Horizon and decay factor; a NaN entry (a contribution that overflowed, in a chaotic
  recurrence) is left out of the fit and counts as no contribution for the horizon."""
  curve = jnp.asarray(norms, jnp.float32)
  finite = jnp.where(jnp.isnan(curve), jnp.zeros_like(curve), curve)
  return (
    int(analysis.gradient_horizon(finite, fraction=FRACTION)),
    float(analysis.decay_rate(curve)),
  )


def _linear(cell: Any) -> bool:
  return getattr(cell, "affine", None) is not None


def _transient(time: int) -> int:
  return time // 10


def _times_for(sizes: Sizes, kind: str, method: str, linear: bool) -> tuple[int, ...]:
  """The lengths a cell runs at with a method; a linear cell (one scan) at every length."""
  if linear:
    return sizes.times
  longest = max(sizes.times)
  return tuple(
    t
    for t in sizes.times
    if (method != "quasi" or t <= sizes.quasi_max_time)
    and (t < longest or kind in sizes.longest_cells)
  )


def _measure(
  cell: Any,
  kind: str,
  params: Any,
  contributions: np.ndarray,
  probe: tasks.Batch,
  inputs: Mapping[int, Array],
  sizes: Sizes,
) -> Measurement:
  lam = gj.dynamics.largest_lyapunov_exponent(
    cell, params.cell, probe.xs, transient=_transient(probe.xs.shape[0])
  )
  h, rho = _summaries(contributions)
  newton = {
    m: _newton(
      cell, params.cell, inputs, _times_for(sizes, kind, m, _linear(cell)), m, sizes.max_iter
    )
    for m in METHODS
  }
  return Measurement(
    lyapunov=np.asarray(lam, np.float64),
    contributions=np.asarray(contributions, np.float64),
    horizon=h,
    decay_rate=rho,
    newton=newton,
  )


def _initial_params(cell: Any, task: tasks.Task, key: PRNGKeyArray) -> Any:
  """The parameters :func:`gatejax.train.fit` starts from with ``key`` (its run key's first
  half), without building its optimiser state and evaluation set."""
  from gatejax import train

  k_run, _ = jax.random.split(key)
  k_params, _ = jax.random.split(k_run)
  return train.init_model(cell, task, k_params)


def _check_sizes(sizes: Any) -> Sizes:
  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a dynamics.Sizes, got {type(sizes).__name__}")
  for kind in (*sizes.cells, *sizes.longest_cells):
    if kind not in KINDS:
      raise ValueError(f"cells and longest_cells must be among {KINDS}, got {kind!r}")
  if not sizes.times or min(sizes.times) < 2:
    raise ValueError(f"times must be lengths >= 2, got {sizes.times}")
  if not sizes.gains:
    raise ValueError("gains must not be empty")
  return sizes


def run(
  sizes: Sizes = FULL,
  *,
  key: PRNGKeyArray,
  trained: Mapping[str, Trained] | None = None,
  progress: Callable[[str], None] | None = None,
) -> Result:
  """Measure every cell before and after training, and sweep the tanh RNN's gain.

  Each cell trains with :func:`gatejax.train.fit` from ``key`` on
  ``tasks.adding(sizes.train_time)`` (the horizon experiment's runs, for the same key and
  sizes), unless ``trained`` has it. The probe batch is the horizon experiment's
  (``fold_in(key, 7)``); the Newton inputs and the sweep draw from ``fold_in(key, 11)`` and
  ``fold_in(key, 12)``.

  Args:
    sizes: a :class:`Sizes` (:data:`FULL`, :data:`QUICK`).
    key: the PRNG key of the whole experiment.
    trained: kind -> :class:`Trained`, models already trained with this key and these
      sizes; those cells are not trained again.
    progress: called with a one-line message as each stage starts.

  Returns:
    A :class:`Result`.
  """
  from gatejax import train

  sizes = _check_sizes(sizes)
  say = progress or (lambda message: None)
  trained = dict(trained or {})
  task = tasks.adding(sizes.train_time)
  probe = task.sample(jax.random.fold_in(key, 7), sizes.probe_batch)
  k_newton, k_sweep = jax.random.fold_in(key, 11), jax.random.fold_in(key, 12)
  inputs = {
    t: tasks.adding(t).sample(jax.random.fold_in(k_newton, t), sizes.newton_batch).xs
    for t in sizes.times
  }
  cells: dict[str, CellRun] = {}
  for kind in sizes.cells:
    cell = dynamics_cell(kind, sizes.hidden)
    name = NAMES[kind]
    initial = _initial_params(cell, task, key)
    given = trained.get(kind)
    if given is None:
      say(f"dynamics: {name}: {sizes.train_steps} steps on the adding problem, T = {task.time}")
      fitted = train.fit(
        cell,
        task,
        key=key,
        steps=sizes.train_steps,
        batch_size=sizes.train_batch,
        learning_rate=sizes.learning_rate,
        clip_norm=sizes.clip_norm,
        # Only the final evaluation is reported: evaluate at the start and the end.
        eval_every=max(1, sizes.train_steps),
        progress=False,
      )
      history = fitted.history
      given = Trained(
        params=fitted.params,
        final_eval=math.nan if history.diverged else float(history.eval_loss[-1]),
      )
      by = "dynamics"
    else:
      by = "horizon"
    if given.contributions is None:
      before = np.asarray(_task_contributions(cell, task, initial, probe))
      after = np.asarray(_task_contributions(cell, task, given.params, probe))
    else:
      before, after = given.contributions
    say(f"dynamics: {name}: Lyapunov exponents and Newton sweeps, T = {sizes.times}")
    cells[kind] = CellRun(
      name=name,
      linear=_linear(cell),
      init=_measure(cell, kind, initial, before, probe, inputs, sizes),
      trained=_measure(cell, kind, given.params, after, probe, inputs, sizes),
      final_eval=given.final_eval,
      trained_by=by,
    )
  say(f"dynamics: tanh RNN, W_h = g·N(0, 1/H), g in {sizes.gains}")
  sweep = _sweep(sizes, k_sweep)
  return Result(sizes=sizes, baseline=task.baseline, cells=cells, sweep=sweep)


def _sweep(sizes: Sizes, key: PRNGKeyArray) -> tuple[GainPoint, ...]:
  H = sizes.sweep_hidden
  cell = gj.rnn(H)
  k_w, k_p, k_x, k_n = jax.random.split(key, 4)
  base = cell.init(k_p, 1)
  normal = jax.random.normal(k_w, (H, H), base.w_h.dtype) / math.sqrt(H)
  xs = sizes.input_scale * jax.random.normal(k_x, (sizes.sweep_time, sizes.sweep_batch, 1))
  inputs = {
    t: sizes.input_scale * jax.random.normal(jax.random.fold_in(k_n, t), (t, sizes.newton_batch, 1))
    for t in sizes.times
  }
  points = []
  for g in sizes.gains:
    params = base._replace(w_h=jnp.asarray(g, normal.dtype) * normal)
    lam = gj.dynamics.largest_lyapunov_exponent(
      cell, params, xs, transient=_transient(sizes.sweep_time)
    )
    norms = np.asarray(_output_contributions(cell, params, xs))
    _, rho = _summaries(norms)
    newton = _newton(cell, params, inputs, sizes.times, "deer", sizes.max_iter)
    points.append(
      GainPoint(gain=float(g), lyapunov=np.asarray(lam, np.float64), decay_rate=rho, newton=newton)
    )
  return tuple(points)


# ---------------------------------------------------------------------------
# Reading the numbers
# ---------------------------------------------------------------------------


def _signed(x: float) -> str:
  return f"{x:+.3f}" if math.isfinite(x) else str(x)


def crossing(result: Result) -> float | None:
  """The gain at which λ_max first turns non-negative, linearly interpolated; ``None`` if never."""
  pts = result.sweep
  for a, b in itertools.pairwise(pts):
    if a.lam < 0 <= b.lam:
      return a.gain + (b.gain - a.gain) * (-a.lam) / (b.lam - a.lam)
  return None


def _sweeps_text(s: Sweeps | None, time: int) -> str:
  entry = s.at(time) if s is not None else None
  if entry is None:
    return "—"
  count, outcome = entry
  return {"converged": str(count), "cap": f"✗ {count}", "overflow": f"✗ ovf@{count}"}[outcome]


def lyapunov_and_decay(result: Result) -> list[tuple[str, float, float]]:
  """``(label, λ_max, log ρ)`` for every cell state and gain."""
  rows = [
    (f"{run.name} ({state})", m.lam, m.log_rho)
    for run in result.cells.values()
    for state, m in (("init", run.init), ("trained", run.trained))
  ]
  rows += [(f"tanh RNN, g = {p.gain:g}", p.lam, p.log_rho) for p in result.sweep]
  return rows


def agreement(result: Result) -> dict[str, float]:
  """How close :math:`\\log\\rho` is to :math:`\\lambda_{\\max}` over every cell state and gain.

  Returns:
    ``{"count", "median_abs_difference", "max_abs_difference", "same_sign", "correlation"}``
    over the rows where both are finite (``correlation`` is Pearson's, ``nan`` for fewer
    than three rows or a constant column).
  """
  pairs = np.array([(lam, lr) for _, lam, lr in lyapunov_and_decay(result)], np.float64).reshape(
    -1, 2
  )
  pairs = pairs[np.isfinite(pairs).all(axis=1)]
  if pairs.size == 0:
    return {
      "count": 0,
      "median_abs_difference": math.nan,
      "max_abs_difference": math.nan,
      "same_sign": 0,
      "correlation": math.nan,
    }
  diff = np.abs(pairs[:, 1] - pairs[:, 0])
  corr = (
    float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    if len(pairs) >= 3 and pairs.std(axis=0).min() > 0
    else math.nan
  )
  return {
    "count": len(pairs),
    "median_abs_difference": float(np.median(diff)),
    "max_abs_difference": float(diff.max()),
    "same_sign": int(np.sum(np.sign(pairs[:, 0]) == np.sign(pairs[:, 1]))),
    "correlation": corr,
  }


def _ran(run: CellRun, method: str, time: int) -> bool:
  return time in run.init.newton[method].times


def method_name(method: str) -> str:
  """How the tables name a method: ``"deer"`` -> ``"DEER"``, ``"quasi"`` -> ``"quasi-DEER"``."""
  return {"deer": "DEER", "quasi": "quasi-DEER"}.get(method, method)


def cell_table(result: Result) -> str:
  """Markdown: cell × state, λ_max, log ρ, horizon, and the Newton sweeps at every length."""
  s = result.sizes
  cols = [
    (m, t) for m in METHODS for t in s.times if any(_ran(r, m, t) for r in result.cells.values())
  ]
  head = (
    f"| cell | state | eval loss | λ_max | log ρ | log ρ − λ_max | horizon (of {s.train_time}) | "
    + " | ".join(f"{method_name(m)} T={t:,}" for m, t in cols)
    + " |"
  )
  rows = [head, "|" + "---|" * (7 + len(cols))]
  for run in result.cells.values():
    for state, m in (("init", run.init), ("trained", run.trained)):
      loss = "" if state == "init" else _format.number(run.final_eval)
      rows.append(
        f"| {run.name} | {state} | {loss} | {_signed(m.lam)} | {_signed(m.log_rho)} "
        f"| {_signed(m.log_rho - m.lam)} | {m.horizon} | "
        + " | ".join(_sweeps_text(m.newton.get(meth), t) for meth, t in cols)
        + " |"
      )
  return "\n".join(rows)


def sweep_table(result: Result) -> str:
  """Markdown: gain, λ_max, log ρ and the DEER sweeps at every length."""
  times = result.sizes.times
  rows = [
    "| g | λ_max | log ρ | log ρ − λ_max | " + " | ".join(f"DEER T={t:,}" for t in times) + " |",
    "|" + "---|" * (4 + len(times)),
  ]
  for p in result.sweep:
    rows.append(
      f"| {p.gain:g} | {_signed(p.lam)} | {_signed(p.log_rho)} | {_signed(p.log_rho - p.lam)} | "
      + " | ".join(_sweeps_text(p.newton, t) for t in times)
      + " |"
    )
  return "\n".join(rows)


def classify(s: Sweeps) -> str:
  """``"flat"`` (converged at every length, the longest needing at most twice the sweeps of
  the shortest), ``"grows"`` (converged, more than twice), ``"fails"`` (some length did not
  converge) or ``"single"`` (fewer than two lengths)."""
  if len(s.times) < 2:
    return "single"
  if not s.converged.all():
    return "fails"
  first, last = s.iterations[0].max(), s.iterations[-1].max()
  return "flat" if last <= 2 * max(int(first), 1) else "grows"


def _row(s: Sweeps) -> str:
  return ", ".join(f"{_sweeps_text(s, t)} at T = {t:,}" for t in s.times)


def _separation(cases: Sequence[tuple[str, Sweeps, float]]) -> str | None:
  """Whether λ_max separates the flat cases from the others, in numbers."""
  flat = [lam for _, sw, lam in cases if classify(sw) == "flat"]
  other = [lam for _, sw, lam in cases if classify(sw) in ("grows", "fails")]
  if not flat or not other:
    return None
  if max(flat) < min(other):
    return (
      f"λ_max separates them: flat wherever λ_max ≤ {max(flat):+.3f}, growing or failing "
      f"wherever λ_max ≥ {min(other):+.3f}."
    )
  return (
    f"λ_max alone does not separate them: runs as close to 0 as λ_max = {max(flat):+.3f} "
    f"stayed flat, while one with λ_max = {min(other):+.3f} grew or failed."
  )


def _newton_findings(result: Result) -> list[str]:
  out = []
  overflowed_contracting = []
  for method in METHODS:
    cases = [
      (f"{r.name} {state}", getattr(r, state).newton[method], getattr(r, state).lam)
      for r in result.cells.values()
      if not r.linear
      for state in STATES
    ]
    cases = [c for c in cases if classify(c[1]) != "single"]
    if not cases:
      continue
    name = method_name(method)
    groups = {k: [c for c in cases if classify(c[1]) == k] for k in ("flat", "grows", "fails")}
    parts = [
      f"{what} for "
      + "; ".join(f"{n} (λ_max {lam:+.3f}: {_row(sw)})" for n, sw, lam in groups[key])
      for key, what in (
        ("flat", "Flat in T"),
        ("grows", "Growing with T"),
        ("fails", "Not converging at some length"),
      )
      if groups[key]
    ]
    sentence = f"{name} sweeps. " + ". ".join(parts) + "."
    sep = _separation(cases)
    out.append(sentence + (f" {sep}" if sep else ""))
    overflowed_contracting += [
      f"{name}, {n}" for n, sw, lam in cases if lam < 0 and "overflow" in sw.outcomes()
    ]
  if overflowed_contracting:
    out.append(
      "A sweep overflowed (ovf) in runs whose λ_max < 0 ("
      + "; ".join(overflowed_contracting)
      + "): Newton's linear recurrence is linearised at the current guess, not at the "
      "solution, and along a poor guess (the first is the initial carry at every step, far "
      "from the trajectory) it can expand over thousands of steps while the true trajectory "
      'contracts; float32 overflows near e^88. ELK\'s damping (`method="elk"`) exists for this.'
    )
  return out


def findings(result: Result) -> list[str]:
  """Sentences chosen by the measured numbers."""
  out: list[str] = []
  s = result.sizes
  for state in STATES:
    runs = {r.name: getattr(r, state) for r in result.cells.values()}
    if not runs:
      continue
    positive = [n for n, m in runs.items() if m.lam >= 0]
    text = ", ".join(f"{n} {_signed(m.lam)}" for n, m in runs.items())
    where = "at initialisation" if state == "init" else "after training"
    if not positive:
      out.append(
        f"Every cell is contracting {where} (λ_max < 0 per step: {text}): perturbations of "
        "the carry, and gradients through it, shrink."
      )
    else:
      out.append(f"λ_max {where}: {text}; not contracting (λ_max ≥ 0) for {', '.join(positive)}.")
  # Compared as printed (three decimals), so a sentence never reports -0.211 → -0.211.
  moved = {
    r.name: (round(abs(r.trained.lam), 3) - round(abs(r.init.lam), 3), r)
    for r in result.cells.values()
  }
  closer = [r for change, r in moved.values() if change < 0]
  farther = [r for change, r in moved.values() if change > 0]
  if closer:
    out.append(
      "Training moved λ_max towards 0, a longer memory, for "
      + ", ".join(f"{r.name} ({_signed(r.init.lam)} → {_signed(r.trained.lam)})" for r in closer)
      + "."
    )
  if farther:
    out.append(
      "Training moved λ_max away from 0, a shorter memory, for "
      + ", ".join(f"{r.name} ({_signed(r.init.lam)} → {_signed(r.trained.lam)})" for r in farther)
      + "."
    )
  a = agreement(result)
  if a["count"]:
    close = (
      a["median_abs_difference"]
      <= 0.1 * max(1e-3, float(np.median([abs(lam) for _, lam, _ in lyapunov_and_decay(result)])))
      or a["median_abs_difference"] <= 0.01
    )
    out.append(
      f"log ρ (the gradient contributions' fitted log-factor per step back) against λ_max, "
      f"over {a['count']} cell states and gains: median |log ρ − λ_max| = "
      f"{a['median_abs_difference']:.3f} per step (largest {a['max_abs_difference']:.3f}), "
      f"the same sign in {a['same_sign']} of {a['count']}"
      + (f", correlation {a['correlation']:.3f}" if math.isfinite(a["correlation"]) else "")
      + ". "
      + (
        "The gradient's decay per step is the largest Lyapunov exponent to that accuracy: "
        "ρ ≈ exp(λ_max)."
        if close
        else "They differ by more than a tenth of a typical |λ_max|: the read-out, the "
        "per-step parameter Jacobians and the fit over one short, batch-summed curve move "
        "log ρ away from λ_max."
      )
    )
  out += _newton_findings(result)
  linear = [r for r in result.cells.values() if r.linear]
  if linear:
    ones = all(
      (getattr(r, st).newton[m].iterations == 1).all() and getattr(r, st).newton[m].converged.all()
      for r in linear
      for st in STATES
      for m in METHODS
    )
    lengths = sorted({t for r in linear for t in r.init.newton["deer"].times})
    out.append(
      ", ".join(r.name for r in linear)
      + (" are" if len(linear) > 1 else " is")
      + " linear in the carry: "
      + (
        "gj.parallel_scan solved every run in exactly 1 sweep (one associative scan, "
        f"exact) at T = {', '.join(f'{t:,}' for t in lengths)}, before and after training."
        if ones
        else "yet some run took more than one sweep; see the table."
      )
    )
  pts = result.sweep
  if pts:
    g_c = crossing(result)
    lam_text = ", ".join(f"g = {p.gain:g}: {_signed(p.lam)}" for p in pts)
    lead = f"Tanh RNN, W_h = g·N(0, 1/{s.sweep_hidden}), inputs N(0, {s.input_scale:g}²): λ_max "
    if g_c is not None:
      out.append(lead + f"crosses 0 at g ≈ {g_c:.2f} (linear interpolation; {lam_text}).")
    else:
      sign = (
        "negative at every gain" if all(p.lam < 0 for p in pts) else "never crosses 0 from below"
      )
      out.append(lead + f"is {sign} ({lam_text}).")
    cases = [(f"g = {p.gain:g}", p.newton, p.lam) for p in pts]
    flat = [c for c in cases if classify(c[1]) == "flat"]
    other = [c for c in cases if classify(c[1]) in ("grows", "fails")]
    if flat:
      out.append(
        "DEER flat in T (converged at every length, at most twice the sweeps at the longest): "
        + "; ".join(f"{n} (λ_max {lam:+.3f}): {_row(sw)}" for n, sw, lam in flat)
        + "."
      )
    if other:
      out.append(
        "DEER growing with T or not converging: "
        + "; ".join(f"{n} (λ_max {lam:+.3f}): {_row(sw)}" for n, sw, lam in other)
        + "."
      )
    sep = _separation(cases)
    if sep:
      out.append(
        sep + " Predictability (λ_max well below 0) is what lets Newton's method evaluate a "
        "long sequence in a few parallel sweeps."
      )
  return out


def to_markdown(result: Result) -> str:
  """The two tables and the findings."""
  s = result.sizes
  notes = (
    f"Sweeps: the most over {s.newton_batch} sequence(s) per length. ✗ n: not converged "
    f"after the cap of n = {s.max_iter} sweeps; ✗ ovf@n: stopped when sweep n overflowed "
    f"(float32); —: not run. quasi-DEER runs up to T = {s.quasi_max_time:,} and the longest "
    "length only for "
    + (", ".join(NAMES[k] for k in s.longest_cells if k in s.cells) or "no cell")
    + "; a cell linear in its carry (one scan) runs at every length with both methods"
    + ". log ρ: the contributions' fitted decay factor per step back ρ "
    "(`gatejax.analysis.decay_rate`), as a log."
  )
  return "\n\n".join(
    [
      cell_table(result),
      notes,
      sweep_table(result),
      "\n".join(f"- {line}" for line in findings(result)),
    ]
  )


def figures(result: Result) -> dict[str, Any]:
  """The experiment's two figures, ``matplotlib.figure.Figure`` values by role.

  ``"edge_of_chaos"``: λ_max (and log ρ) and the DEER sweeps against the gain
  (:func:`gatejax.plots.lyapunov_sweep`); ``"sweeps_against_length"``: every cell's DEER
  and quasi-DEER sweeps against ``T``, at initialisation and trained
  (:func:`gatejax.plots.sweeps_against_length`). Runs that did not converge are drawn at
  the cap.
  """
  from gatejax import plots

  s = result.sizes
  out: dict[str, Any] = {}
  if result.sweep:
    curves = [p.newton.curve() for p in result.sweep]
    label = {t: f"T = {t:,}" for t in s.times}
    out["edge_of_chaos"] = plots.lyapunov_sweep(
      [p.gain for p in result.sweep],
      [p.lam for p in result.sweep],
      {label[t]: [c[1][c[0].index(t)] for c in curves] for t in s.times},
      converged={label[t]: [c[2][c[0].index(t)] for c in curves] for t in s.times},
      log_rho=[p.log_rho for p in result.sweep],
      crossing=crossing(result),
      max_iter=s.max_iter,
      failed_at=s.max_iter,
      title=f"Tanh RNN at the edge of chaos (H = {s.sweep_hidden}): λ_max and DEER sweeps",
    )
  if result.cells:
    panels = {
      method_name(m): {
        r.name: {state: getattr(r, state).newton[m].curve() for state in STATES}
        for r in result.cells.values()
      }
      for m in METHODS
    }
    out["sweeps_against_length"] = plots.sweeps_against_length(
      panels,
      max_iter=s.max_iter,
      failed_at=s.max_iter,
      title="Newton sweeps of gj.parallel_scan against T, at initialisation (dashed) "
      "and after training (solid)",
    )
  return out


def _sweeps_json(sw: Sweeps) -> dict[str, Any]:
  return {
    "times": list(sw.times),
    "iterations": sw.iterations.tolist(),
    "converged": sw.converged.tolist(),
    "outcome": sw.outcomes(),
    "max_iter": sw.max_iter,
  }


def _measurement_json(m: Measurement) -> dict[str, Any]:
  return {
    "lyapunov_mean": float(m.lam),
    "lyapunov": [float(v) for v in m.lyapunov],
    "decay_rate": float(m.decay_rate),
    "log_decay_rate": float(m.log_rho),
    "horizon": m.horizon,
    "contributions": [float(v) for v in m.contributions],
    "newton": {method: _sweeps_json(sw) for method, sw in m.newton.items()},
  }


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as the strings ``"nan"``, ``"inf"``,
  ``"-inf"``, as in every JSON the library writes)."""
  return _format.jsonable(
    {
      "sizes": result.sizes._asdict(),
      "baseline": result.baseline,
      "cells": {
        kind: {
          "name": r.name,
          "linear_in_carry": r.linear,
          "trained_by": r.trained_by,
          "final_eval": float(r.final_eval),
          "init": _measurement_json(r.init),
          "trained": _measurement_json(r.trained),
        }
        for kind, r in result.cells.items()
      },
      "sweep": [
        {
          "gain": p.gain,
          "lyapunov_mean": float(p.lam),
          "lyapunov": [float(v) for v in p.lyapunov],
          "decay_rate": float(p.decay_rate),
          "log_decay_rate": float(p.log_rho),
          "newton": _sweeps_json(p.newton),
        }
        for p in result.sweep
      ],
      "crossing_gain": crossing(result),
      "agreement": agreement(result),
      "findings": findings(result),
    }
  )
