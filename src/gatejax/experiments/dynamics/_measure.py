"""Measuring the dynamics experiment: Lyapunov exponents, gradient decay and Newton sweeps."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import gatejax as gj
from gatejax import analysis, tasks
from gatejax._jit import bounded_jit
from gatejax.experiments import _common

#: The cells the experiment measures, by the names of their factories: every built-in cell
#: (LRU's complex carry as its real and imaginary parts, :mod:`gatejax.run.flat`).
KINDS = tuple(_common.CELLS)
#: The cells trained by default: the classic and minimal cells. The modern ones (sLSTM,
#: mLSTM, RG-LRU, S6, DeltaNet) are measured at initialisation only, which keeps the
#: report's time (training one for 600 steps took 30-130 s on two loaded CPU cores, sLSTM
#: the most; its trained Newton sweeps as many again).
TRAINED_KINDS = ("rnn", "gru", "lstm", "mgu", "minimal_rnn", "min_gru", "min_lstm")
#: The Newton methods of :func:`gatejax.parallel_scan` whose sweeps are counted.
METHODS = ("deer", "quasi")
#: A cell's two states, at initialisation and trained.
STATES = ("init", "trained")


class Sizes(NamedTuple):
  """Sizes of the experiment.

  The training fields equal :class:`gatejax.experiments.horizon.Sizes`'s (``FULL``
  those of its defaults, ``QUICK`` of its quick sizes), so that with the same key the
  runs of RNN, GRU and LSTM are the horizon experiment's and the report trains them once.

  Attributes:
    cells: cells among :data:`KINDS`.
    train_cells: those of ``cells`` that are also trained; the others are measured at
      initialisation only.
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
  train_cells: tuple[str, ...] = TRAINED_KINDS
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
  train_cells=("lstm", "min_gru"),
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
    init, trained: the two :class:`Measurement`; ``trained`` is ``None`` for a cell measured
      at initialisation only (not in ``Sizes.train_cells``).
    final_eval: the trained model's last evaluation loss (``nan`` if it diverged or was not
      trained).
    trained_by: ``"horizon"`` when the model came from the horizon experiment,
      ``"dynamics"`` when trained here, ``None`` when not trained.
  """

  name: str
  linear: bool
  init: Measurement
  trained: Measurement | None
  final_eval: float
  trained_by: str | None

  def states(self) -> list[tuple[str, Measurement]]:
    """``(state, measurement)`` for each state measured: ``"init"``, and ``"trained"`` if trained."""
    pairs = [("init", self.init), ("trained", self.trained)]
    return [(state, m) for state, m in pairs if m is not None]


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
    int(analysis.gradient_horizon(finite, fraction=_common.HORIZON_FRACTION)),
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
  for kind in (*sizes.cells, *sizes.longest_cells, *sizes.train_cells):
    if kind not in KINDS:
      raise ValueError(f"cells, longest_cells and train_cells must be among {KINDS}, got {kind!r}")
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
  task = _common.task("adding", sizes.train_time)
  probe = task.sample(jax.random.fold_in(key, 7), sizes.probe_batch)
  k_newton, k_sweep = jax.random.fold_in(key, 11), jax.random.fold_in(key, 12)
  inputs = {
    t: _common.task("adding", t).sample(jax.random.fold_in(k_newton, t), sizes.newton_batch).xs
    for t in sizes.times
  }
  cells: dict[str, CellRun] = {}
  for kind in sizes.cells:
    cell = _common.cell(kind, sizes.hidden)
    name = _common.display_name(kind)
    initial = _initial_params(cell, task, key)
    given = trained.get(kind)
    if given is None and kind not in sizes.train_cells:
      say(f"dynamics: {name}: Lyapunov exponents and Newton sweeps at initialisation only")
      before = np.asarray(_task_contributions(cell, task, initial, probe))
      cells[kind] = CellRun(
        name=name,
        linear=_linear(cell),
        init=_measure(cell, kind, initial, before, probe, inputs, sizes),
        trained=None,
        final_eval=math.nan,
        trained_by=None,
      )
      continue
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
