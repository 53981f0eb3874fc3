r"""The state of a run and the one pure step that advances it.

Everything is built around one pure step,

.. math:: (\text{state}_{s+1}, \text{metrics}_s) = \mathrm{train\_step}(\text{state}_s),

whose batch is drawn from ``fold_in(state.key, state.step)``. A :class:`TrainState`
therefore holds everything a run depends on (step, parameters, optimizer state, data
key): a run resumed from a saved state reproduces the uninterrupted run bit for bit,
and the pieces (:func:`batch_for_step`, :func:`step_on_batch`, :func:`apply_gradients`)
can be recombined, for example to shard the batch over devices.

Gradients are clipped by the optimizer (:func:`gatejax.train.make_optimizer`);
``grad_norm`` in the metrics is the norm before clipping.

The task's metric (an accuracy) is NaN on a batch where any prediction is NaN, as the
loss is: an ``argmax`` of NaN scores picks index 0, which would count every NaN
prediction of a label-0 example as right (about one in ten on ``digits``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

import gatejax.train._checks as _checks
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.run.options import ScanOptions
from gatejax.tasks import Batch, Task
from gatejax.train.model import ModelParams, init_model, predict

__all__ = [
  "EvalMetrics",
  "StepMetrics",
  "TrainState",
  "apply_gradients",
  "batch_for_step",
  "evaluate",
  "evaluation_batch",
  "init_state",
  "step_on_batch",
  "train_step",
]


class TrainState(NamedTuple):
  """Everything a run depends on, a pytree that can be saved and restored.

  Attributes:
    step: the number of updates done, an int32 scalar array.
    params: :class:`~gatejax.train.ModelParams`.
    opt_state: the optimizer's state.
    key: the data key: step ``s`` trains on ``task.sample(fold_in(key, s), batch_size)``.
  """

  step: Int[Array, ""]
  params: ModelParams
  opt_state: Any
  key: PRNGKeyArray


class StepMetrics(NamedTuple):
  """What one step measured on its batch, before the update.

  Attributes:
    loss: the training loss.
    grad_norm: the global L2 norm of the gradient, before clipping.
    metric: ``task.metric`` on the batch (NaN when a prediction is NaN), or ``None`` for
      a task without one.
  """

  loss: Float[Array, ""]
  grad_norm: Float[Array, ""]
  metric: Float[Array, ""] | None


class EvalMetrics(NamedTuple):
  """The loss and, if the task has one, the metric on an evaluation batch.

  Attributes:
    loss: the task's loss.
    metric: ``task.metric`` (NaN when a prediction is NaN), or ``None`` for a task without one.
  """

  loss: Float[Array, ""]
  metric: Float[Array, ""] | None


def init_state(
  cell: Cell, task: Task, key: PRNGKeyArray, optimizer: optax.GradientTransformation
) -> TrainState:
  """A fresh run: ``key`` splits into the parameter key and the data key.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> state = train.init_state(gj.rnn(4), tasks.adding(10), jax.random.key(0),
    ...                          train.make_optimizer())
    >>> int(state.step)
    0
  """
  _checks.cell_and_task(cell, task)
  k_params, k_data = jax.random.split(key)
  params = init_model(cell, task, k_params)
  return TrainState(
    step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params), key=k_data
  )


def batch_for_step(task: Task, state: TrainState, batch_size: int) -> Batch:
  """The batch that step ``state.step`` trains on: ``task.sample(fold_in(state.key, state.step))``."""
  return task.sample(jax.random.fold_in(state.key, state.step), batch_size)


def apply_gradients(
  optimizer: optax.GradientTransformation, state: TrainState, grads: ModelParams
) -> TrainState:
  """One optimizer update of ``state`` with ``grads``; advances ``state.step`` by one."""
  # optax mixes Python floats with its int32 step count (Adam's bias correction 1 - b**t),
  # which strict dtype promotion rejects; the optimizer's internal arithmetic is its own.
  with jax.numpy_dtype_promotion("standard"):
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = cast(ModelParams, optax.apply_updates(state.params, updates))
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key)


def _metric(task: Task, predictions: Array, batch: Batch) -> Array | None:
  """``task.metric``, NaN when any prediction is NaN (see the module docstring)."""
  if task.metric is None:
    return None
  value = task.metric(predictions, batch)
  return jnp.where(jnp.isnan(predictions).any(), jnp.asarray(jnp.nan, value.dtype), value)


def _step_on_batch(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  state: TrainState,
  batch: Batch,
  options: ScanOptions | None = None,
) -> tuple[TrainState, StepMetrics]:
  def objective(params: ModelParams) -> tuple[Array, Array]:
    predictions = predict(cell, task, params, batch, options=options)
    return task.loss(predictions, batch), predictions

  (loss, predictions), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  metric = _metric(task, predictions, batch)
  metrics = StepMetrics(loss=loss, grad_norm=optax.tree.norm(grads), metric=metric)
  return apply_gradients(optimizer, state, grads), metrics


@bounded_jit(static_argnames=("cell", "task", "optimizer", "options"))
def step_on_batch(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  state: TrainState,
  batch: Batch,
  *,
  options: ScanOptions | None = None,
) -> tuple[TrainState, StepMetrics]:
  """One jitted update on an explicit ``batch`` (which may be sharded over devices).

  ``train_step(cell, task, optimizer, state)`` is this with
  ``batch = batch_for_step(task, state, batch_size)``, equal up to float32 rounding
  (XLA may fuse a program that samples its batch differently from one that receives
  it); each of the two is deterministic on its own.
  """
  return _step_on_batch(cell, task, optimizer, state, batch, options)


@bounded_jit(static_argnames=("cell", "task", "optimizer", "batch_size", "options"))
def train_step(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  state: TrainState,
  *,
  batch_size: int = 64,
  options: ScanOptions | None = None,
) -> tuple[TrainState, StepMetrics]:
  """One pure, jitted training step on the batch of step ``state.step``.

  To run it data-parallel, split the task's batches over a mesh with
  :func:`gatejax.train.shard_task` and place the state with :func:`gatejax.train.replicate`:
  the step is then the same program, partitioned by the compiler.

  Args:
    cell, task, optimizer: static (hashable) descriptions of the run.
    state: the :class:`TrainState` before the step.
    batch_size: sequences per batch (static).
    options: a :class:`~gatejax.ScanOptions` (static): how the sequence runs.

  Returns:
    ``(state, metrics)``: the state after one update and the :class:`StepMetrics`
    measured before it.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> cell, task, opt = gj.lstm(8), tasks.adding(10), train.make_optimizer()
    >>> state = train.init_state(cell, task, jax.random.key(0), opt)
    >>> state, metrics = train.train_step(cell, task, opt, state, batch_size=16)
    >>> int(state.step), metrics.loss.shape
    (1, ())
  """
  batch = batch_for_step(task, state, batch_size)
  return _step_on_batch(cell, task, optimizer, state, batch, options)


@bounded_jit(static_argnames=("cell", "task", "options"))
def evaluate(
  cell: Cell, task: Task, params: ModelParams, batch: Batch, *, options: ScanOptions | None = None
) -> EvalMetrics:
  """The loss and metric of ``params`` on ``batch``, jitted.

  The metric is NaN when any prediction is NaN (the loss is then NaN too): a statistic
  of NaN inputs is not a number, where ``argmax`` alone would call NaN scores class 0.
  """
  predictions = predict(cell, task, params, batch, options=options)
  return EvalMetrics(loss=task.loss(predictions, batch), metric=_metric(task, predictions, batch))


def evaluation_batch(task: Task, key: PRNGKeyArray, batch_size: int) -> Batch:
  """The evaluation set: the whole split for a finite data set, else ``batch_size`` fresh samples."""
  if task.dataset is not None:
    return task.dataset()
  return task.sample(key, batch_size)
