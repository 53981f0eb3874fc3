"""Measuring the horizon experiment: train each cell, probe its gradient before and after."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import gatejax as gj
from gatejax import analysis, tasks
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.experiments import _common

#: The cells trained, a plain RNN and the two classic gated cells.
KINDS = ("rnn", "gru", "lstm")


class Sizes(NamedTuple):
  """Sizes of the experiment, and the cells it trains.

  Attributes:
    time: length of the adding problem.
    hidden: hidden units of every cell.
    batch: sequences per training step.
    steps: optimiser steps per cell.
    learning_rate: Adam's learning rate.
    clip_norm: gradient clipping by global norm.
    probe_batch: sequences of the fixed probe batch the curves are measured on.
    kinds: the cells trained, from :data:`KINDS`.
  """

  time: int = 100
  hidden: int = 32
  batch: int = 64
  steps: int = 600
  learning_rate: float = 1e-2
  clip_norm: float = 1.0
  probe_batch: int = 64
  kinds: tuple[str, ...] = KINDS


#: The sizes of ``gatejax report``.
FULL = Sizes()
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = Sizes(time=20, hidden=8, batch=16, steps=40, probe_batch=8)


class Run(NamedTuple):
  """One cell, before and after training.

  Attributes:
    history: the :class:`gatejax.train.History` of the run.
    before, after: ``(time,)`` contribution norms :math:`\\lVert g_t \\rVert`, step ``t``
      first (``[::-1][d]`` is ``d`` steps back).
    jacobian_before, jacobian_after: ``(time,)`` median over the probe batch of
      :math:`\\lVert \\partial c_T / \\partial c_k \\rVert_2`, ``k = 0 .. T-1``.
    horizon_before, horizon_after: :func:`gatejax.analysis.gradient_horizon` of the
      contribution norms (1% of the peak), in steps.
    far_before, far_after: the share of the contribution from ``T // 2`` or more steps back.
    loss_before, loss_after: the loss on the probe batch.
    final_eval: the last evaluation loss of :func:`gatejax.train.fit` (``nan`` if diverged).
    params: the trained :class:`gatejax.train.ModelParams`, so that a later experiment (the
      dynamics of :mod:`gatejax.experiments.dynamics`) measures the same model instead of
      training it again.
  """

  history: Any
  before: np.ndarray
  after: np.ndarray
  jacobian_before: np.ndarray
  jacobian_after: np.ndarray
  horizon_before: int
  horizon_after: int
  far_before: float
  far_after: float
  loss_before: float
  loss_after: float
  final_eval: float
  params: Any = None


class Result(NamedTuple):
  """What :func:`run` measured: every cell's :class:`Run`, keyed ``"RNN"``, ``"GRU"``, ``"LSTM"``."""

  sizes: Sizes
  runs: dict[str, Run]
  baseline: float


@bounded_jit(static_argnames=("cell", "task"))
def probe_model(cell: Cell, task: tasks.Task, params: Any, batch: tasks.Batch) -> dict[str, Array]:
  """Contribution norms, Jacobian norms and loss of a trained model on one batch.

  The loss is the task's own, read through the model's readout, so the contributions
  are those of the gradient that training follows. One compilation per cell and task:
  the loss closes over the readout and targets inside this jitted function.

  Args:
    cell: the recurrent cell.
    task: a ``"last"``-readout task (the adding problem).
    params: :class:`gatejax.train.ModelParams`.
    batch: the probe batch.

  Returns:
    ``{"contributions": (T,), "jacobian": (T,), "loss": ()}``.
  """
  readout = params.readout

  def loss(ys: Array, carry: Any) -> Array:
    last = ys[-1] @ readout.w + jnp.reshape(readout.b, (1, -1))
    return task.loss(last, batch)

  contributions = analysis.contribution_norms(cell, params.cell, batch.xs, loss)
  jacobian = analysis.jacobian_norms(cell, params.cell, batch.xs)
  _, ys = gj.scan(cell, params.cell, batch.xs)
  return {
    "contributions": contributions,
    "jacobian": jnp.median(jacobian, axis=-1),
    "loss": loss(ys, None),
  }


def _summaries(probe: dict[str, np.ndarray]) -> tuple[int, float]:
  norms = jnp.asarray(probe["contributions"])
  horizon = int(analysis.gradient_horizon(norms, fraction=_common.HORIZON_FRACTION))
  far = float(analysis.far_share(norms, norms.shape[0] // 2))
  return horizon, far


def run(
  sizes: Sizes = FULL,
  *,
  key: PRNGKeyArray,
  progress: Callable[[str], None] | None = None,
  train_progress: bool = False,
) -> Result:
  """Train each cell on the adding problem and measure its gradient before and after.

  Every cell starts from its own default initialisation (:func:`gatejax.rnn`,
  :func:`gatejax.gru`, :func:`gatejax.lstm`) and trains with :func:`gatejax.train.fit`
  from ``key``, so they see the same batches in the same order; the probe batch is drawn
  from ``fold_in(key, 7)``.

  Args:
    sizes: a :class:`Sizes` (:data:`FULL`, :data:`QUICK`).
    key: the PRNG key of every run (parameters, data, probe).
    progress: called with a one-line message as each cell starts.
    train_progress: show :func:`gatejax.train.fit`'s progress bar.

  Returns:
    A :class:`Result`.
  """
  from gatejax import train

  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a horizon.Sizes, got {type(sizes).__name__}")
  for kind in sizes.kinds:
    if kind not in KINDS:
      raise ValueError(f"kinds must be drawn from {KINDS}, got {kind!r}")
  say = progress or (lambda message: None)
  task = _common.task("adding", sizes.time)
  probe = task.sample(jax.random.fold_in(key, 7), sizes.probe_batch)
  runs: dict[str, Run] = {}
  for kind in sizes.kinds:
    cell = _common.cell(kind, sizes.hidden)
    name = _common.display_name(kind)
    say(f"horizon: {name}: {sizes.steps} steps on the adding problem, T = {sizes.time}")
    # fit with zero steps returns the exact initial state of the run below.
    initial = train.fit(cell, task, key=key, steps=0, progress=False).params
    before = jax.device_get(probe_model(cell, task, initial, probe))
    result = train.fit(
      cell,
      task,
      key=key,
      steps=sizes.steps,
      batch_size=sizes.batch,
      learning_rate=sizes.learning_rate,
      clip_norm=sizes.clip_norm,
      eval_every=max(1, sizes.steps // 10),
      progress=train_progress,
    )
    after = jax.device_get(probe_model(cell, task, result.params, probe))
    h_before, f_before = _summaries(before)
    h_after, f_after = _summaries(after)
    history = result.history
    runs[name] = Run(
      history=history,
      before=np.asarray(before["contributions"], np.float64),
      after=np.asarray(after["contributions"], np.float64),
      jacobian_before=np.asarray(before["jacobian"], np.float64),
      jacobian_after=np.asarray(after["jacobian"], np.float64),
      horizon_before=h_before,
      horizon_after=h_after,
      far_before=f_before,
      far_after=f_after,
      loss_before=float(before["loss"]),
      loss_after=float(after["loss"]),
      final_eval=math.nan if history.diverged else float(history.eval_loss[-1]),
      params=result.params,
    )
  return Result(sizes=sizes, runs=runs, baseline=task.baseline)
