r"""The one run: :func:`~gatejax.train.fit`, on top of the model, state, checkpoint and sharding rooms.

:func:`fit` runs the jitted step (:func:`gatejax.train.train_step`) in a Python loop with
a progress bar, evaluation against the task's baseline, a :class:`~gatejax.train.History`
for plots and reports, and divergence detection: a run whose loss becomes NaN or explodes
is stopped and reported, never raised. With ``checkpoints=`` it saves and resumes
(:mod:`gatejax.train.checkpoints`), with ``mesh=`` it runs data-parallel
(:mod:`gatejax.train.sharding`); the two go together.

:func:`train_many_seeds` is the other way to run many steps: one model per key, all at
once under ``jax.vmap``, the seeds split over the devices (:func:`gatejax.train.sweep`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time as _time
from collections.abc import Callable
from typing import NamedTuple

import jax
import optax
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray

import gatejax.train._checks as _checks
from gatejax import protocol
from gatejax.cells import Cell
from gatejax.run.options import ScanOptions
from gatejax.tasks import Task
from gatejax.train.checkpoints import Checkpoints, for_fit, resume
from gatejax.train.history import History
from gatejax.train.model import ModelParams
from gatejax.train.optimizers import (
  DEFAULT_CLIP_NORM,
  DEFAULT_LEARNING_RATE,
  make_optimizer,
  resolve_optimizer,
)
from gatejax.train.sharding import _Placement, sweep
from gatejax.train.state import (
  StepMetrics,
  TrainState,
  evaluate,
  evaluation_batch,
  init_state,
  train_step,
)

__all__ = ["TrainResult", "fit", "train_many_seeds"]


class TrainResult(NamedTuple):
  """What :func:`fit` returns: the final :class:`~gatejax.train.TrainState` and the history."""

  state: TrainState
  history: History

  @property
  def params(self) -> ModelParams:
    """The trained parameters, ``state.params``."""
    return self.state.params


def fit(
  cell: Cell,
  task: Task,
  *,
  key: PRNGKeyArray,
  steps: int,
  batch_size: int = 64,
  learning_rate: float | optax.Schedule = DEFAULT_LEARNING_RATE,
  clip_norm: float | None = DEFAULT_CLIP_NORM,
  optimizer: str | optax.GradientTransformation | None = None,
  eval_every: int | None = None,
  eval_batch_size: int = 512,
  eval_task: Task | None = None,
  log_every: int = 1,
  progress: bool = True,
  state: TrainState | None = None,
  history: History | None = None,
  callback: Callable[[TrainState, History], bool | None] | None = None,
  divergence_threshold: float | None = 1000.0,
  options: ScanOptions | None = None,
  checkpoints: Checkpoints | str | os.PathLike | None = None,
  mesh: Mesh | None = None,
  axis: str | None = None,
) -> TrainResult:
  r"""Train ``cell`` on ``task`` for ``steps`` updates: resumable, data-parallel, divergence reported.

  Seeds: ``key`` splits into the run key (parameters and data, :func:`~gatejax.train.init_state`)
  and the evaluation key, which draws one fixed evaluation set of ``eval_batch_size``
  sequences (or takes the whole split of a finite data set), disjoint in randomness
  from every training batch.

  Divergence: the run stops, with ``history.diverged = True`` and ``diverged_at`` set,
  at the first step whose loss or gradient norm is NaN or infinite, or whose loss
  exceeds ``divergence_threshold × max(task.baseline, initial loss)``. That step's
  update is not applied: the result's state is the one before it (``state.step ==
  diverged_at``), the last one the callback was given, and the history records the
  diverged step's loss and gradient norm. The reference
  is the larger of the baseline and the loss at step 0, so that a task whose
  baseline is far below the untrained loss (copy memory with a long delay) is not
  called diverged at its first step. The default, 1000, is far beyond any run that is
  still learning: a run whose hidden state is bounded (sigmoid gates, tanh) can still
  reach a hundred times its starting loss for a few steps when its readout is thrown
  by too large a learning rate, and recover; an exploding state overshoots 1000 by
  many orders of magnitude within a step or two, then turns to infinity and NaN.

  Resuming: pass the ``state`` and ``history`` of an interrupted run (with the same
  ``key``, ``steps`` and options), or let ``checkpoints`` find them; the result equals
  the uninterrupted run's bit for bit, since step ``s``'s batch depends only on
  ``state.key`` and ``s``. ``steps`` is the total length of the run, not the number of
  steps still to go.

  Checkpoints: with ``checkpoints`` (a :class:`~gatejax.train.Checkpoints` or a
  directory) the run starts from the latest checkpoint there, if any and unless ``state``
  is given, saves every ``every`` steps (a directory: every ``max(1, steps // 10)``; a
  :class:`~gatejax.train.Checkpoints`: its own ``every``, and ``keep``) and saves the
  final state. A directory also records ``key`` and ``batch_size`` and refuses to
  continue a run that had others; a :class:`~gatejax.train.Checkpoints` records its own
  ``run``. Either must belong to this cell, task and optimizer. The directory is locked
  for the run (another process's ``fit`` into it is refused with a
  :class:`~gatejax.train.CheckpointError`); a directory that holds only unfinished saves
  is started afresh with a warning that names them.

  Data parallelism: with ``mesh`` (a one-dimensional device mesh such as
  :func:`gatejax.train.data_mesh`, possibly spanning the devices of several processes
  after ``jax.distributed.initialize``) every batch is split over the devices along its
  batch axis (:func:`gatejax.train.shard_task`) and the state is replicated
  (:func:`gatejax.train.replicate`); the result equals the single-device run's up to
  float32 rounding in the gradient sums. ``batch_size`` and ``eval_batch_size`` must be
  multiples of the number of devices.

  Args:
    cell: any cell (:mod:`gatejax.protocol`).
    task: a :class:`~gatejax.tasks.Task`.
    key: the run's PRNG key.
    steps: the total number of updates.
    batch_size: training sequences per step.
    learning_rate, clip_norm: for an optimizer given by name (see
      :func:`~gatejax.train.resolve_optimizer`); an error beside an ``optax.GradientTransformation``
      unless left at their defaults.
    optimizer: ``None`` (Adam), a name for :func:`~gatejax.train.make_optimizer`, or an optax
      transformation used as is.
    eval_every: evaluate after every this many updates (default ``max(1, steps // 10)``),
      also before training and at the end; ``0`` never evaluates.
    eval_batch_size: the size of the evaluation set of a generated task.
    eval_task: evaluate on this task instead (``digits(split="test")`` for a held-out
      split); it must have the input and output sizes of ``task``.
    log_every: record the training metrics of every this many steps in the history.
    progress: show a tqdm progress bar with the loss.
    state, history: continue this run.
    callback: called as ``callback(state, history)`` after every step (after the
      checkpoint of that step, if any); a true return value stops the run.
    divergence_threshold: see above, a finite number > 0; ``None`` stops only on NaN or
      infinity.
    options: a :class:`~gatejax.ScanOptions`: how every sequence of the run is computed
      (``remat`` to bound memory, ``matmul_dtype=jnp.bfloat16``, ...).
    checkpoints: where to save and resume the run, see above.
    mesh: the devices to split every batch over, see above.
    axis: the mesh axis that splits the batch (default: the mesh's only axis).

  Returns:
    A :class:`TrainResult` ``(state, history)``; ``result.params`` is ``state.params``.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> result = train.fit(gj.lstm(16), tasks.adding(10), key=jax.random.key(0),
    ...                    steps=20, batch_size=32, progress=False)
    >>> int(result.state.step), len(result.history.loss), result.history.diverged
    (20, 20, False)

    Resumable and data-parallel (here on this machine's devices); the second call
    continues the first from its checkpoints (``examples/distributed.py`` does the same
    across processes):

    >>> import tempfile
    >>> run = dict(key=jax.random.key(0), batch_size=8, eval_batch_size=8, progress=False,
    ...            checkpoints=tempfile.mkdtemp(), mesh=train.data_mesh(1))
    >>> first = train.fit(gj.gru(4), tasks.adding(5), steps=4, **run)
    >>> longer = train.fit(gj.gru(4), tasks.adding(5), steps=6, **run)
    >>> longer.history.step     # steps 0-3 restored, 4-5 trained
    [0, 1, 2, 3, 4, 5]
  """
  _checks.cell_and_task(cell, task)
  steps = _checks.positive_int("steps", steps, 0)
  batch_size = _checks.positive_int("batch_size", batch_size)
  eval_batch_size = _checks.positive_int("eval_batch_size", eval_batch_size)
  log_every = _checks.positive_int("log_every", log_every)
  eval_every = (
    max(1, steps // 10) if eval_every is None else _checks.positive_int("eval_every", eval_every, 0)
  )
  divergence_threshold = _checks.positive_float(
    "divergence_threshold", divergence_threshold, "or None to stop only on NaN or infinity"
  )
  eval_task = task if eval_task is None else eval_task
  if not isinstance(eval_task, Task):
    raise TypeError(f"eval_task must be a Task, got {type(eval_task).__name__}")
  if (eval_task.input_size, eval_task.output_size, eval_task.readout) != (
    task.input_size,
    task.output_size,
    task.readout,
  ):
    raise ValueError(
      f"eval_task {eval_task.name!r} does not fit a model for task {task.name!r}: it must "
      "have the same input_size, output_size and readout"
    )
  opt = resolve_optimizer(optimizer, learning_rate=learning_rate, clip_norm=clip_norm)
  if state is not None and not isinstance(state, TrainState):
    raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
  if history is not None and not isinstance(history, History):
    raise TypeError(f"history must be a History, got {type(history).__name__}")

  _checks.scan_options(options)
  placement = None
  if mesh is not None:
    placement = _Placement.of(mesh, axis)
    placement.check_batch_size("batch_size", batch_size)
    if eval_every and eval_task.dataset is None:
      placement.check_batch_size("eval_batch_size", eval_batch_size)
  elif axis is not None:
    raise ValueError("axis names the mesh axis that splits the batch: it needs a mesh")

  with contextlib.ExitStack() as stack:
    ckpts = None
    if checkpoints is not None:
      ckpts = for_fit(
        checkpoints,
        cell=cell,
        task=task,
        optimizer=opt,
        key=key,
        batch_size=batch_size,
        steps=steps,
      )
      if ckpts is not checkpoints:  # opened here from a directory: closed here
        stack.callback(ckpts.close)
      if state is None and history is None:
        state, history = resume(
          ckpts, steps, sharding=None if placement is None else placement.replicated
        )
    if placement is not None:
      task, eval_task = placement.task(task), placement.task(eval_task)
    result = _loop(
      cell,
      task,
      eval_task,
      opt,
      key=key,
      steps=steps,
      batch_size=batch_size,
      eval_every=eval_every,
      eval_batch_size=eval_batch_size,
      log_every=log_every,
      progress=progress,
      state=state,
      history=history,
      callback=callback,
      divergence_threshold=divergence_threshold,
      options=options,
      checkpoints=ckpts,
      placement=placement,
    )
    if ckpts is not None:
      ckpts.save(result.state, result.history)
  return result


def _loop(
  cell: Cell,
  task: Task,
  eval_task: Task,
  opt: optax.GradientTransformation,
  *,
  key: PRNGKeyArray,
  steps: int,
  batch_size: int,
  eval_every: int,
  eval_batch_size: int,
  log_every: int,
  progress: bool,
  state: TrainState | None,
  history: History | None,
  callback: Callable[[TrainState, History], bool | None] | None,
  divergence_threshold: float | None,
  options: ScanOptions | None,
  checkpoints: Checkpoints | None,
  placement: _Placement | None,
) -> TrainResult:
  """The training loop of :func:`fit`, its arguments checked (and the task sharded)."""
  k_run, k_eval = jax.random.split(key)
  if state is not None and int(state.step) > steps:
    raise ValueError(
      f"steps must be >= state.step (steps is the run's total length, not the steps still "
      f"to go), got steps={steps} for a state at step {int(state.step)}"
    )
  current = init_state(cell, task, k_run, opt) if state is None else state
  if placement is not None:
    current = placement.replicate(current)
  if history is None:
    history = History(task=task.name, baseline=task.baseline, metric_name=task.metric_name)
  if history.diverged:
    return TrainResult(current, history)

  eval_batch = evaluation_batch(eval_task, k_eval, eval_batch_size) if eval_every else None

  def run_eval(at: int) -> None:
    if eval_batch is None or (history.eval_step and history.eval_step[-1] == at):
      return
    result = jax.device_get(evaluate(cell, eval_task, current.params, eval_batch, options=options))
    history.eval_step.append(at)
    history.eval_loss.append(float(result.loss))
    if result.metric is not None:
      history.eval_metric.append(float(result.metric))

  start = int(current.step)
  bar = None
  if progress:
    from tqdm import tqdm

    bar = tqdm(
      total=steps, initial=start, desc=f"{protocol.describe(cell)} {task.name}", dynamic_ncols=True
    )
  refresh = max(1, (steps - start) // 200)
  began = _time.perf_counter()
  try:
    if start == 0 and start < steps:
      run_eval(0)
    for s in range(start, steps):
      new_state, metrics = train_step(
        cell, task, opt, current, batch_size=batch_size, options=options
      )
      metrics = jax.device_get(metrics)
      loss, grad_norm = float(metrics.loss), float(metrics.grad_norm)
      if history.initial_loss is None:
        history.initial_loss = loss
      finite = math.isfinite(loss) and math.isfinite(grad_norm)
      reference = max(task.baseline, history.initial_loss)
      exploded = (
        divergence_threshold is not None
        and math.isfinite(reference)
        and loss > divergence_threshold * reference
      )
      if s % log_every == 0 or s == steps - 1 or not finite or exploded:
        history.step.append(s)
        history.loss.append(loss)
        history.grad_norm.append(grad_norm)
        if metrics.metric is not None:
          history.metric.append(float(metrics.metric))
      if not finite or exploded:
        # The update of step s comes from a NaN or exploded gradient: the run stops on the
        # state before it, which is what the callback last saw and checkpointed.
        history.diverged, history.diverged_at = True, s
        break
      current = new_state
      done = s + 1
      if done == steps or (eval_every and done % eval_every == 0):
        run_eval(done)
      if bar is not None:
        bar.update(1)
        if done % refresh == 0 or done == steps:
          postfix = {"loss": f"{loss:.4g}", "baseline": f"{task.baseline:.4g}"}
          if history.eval_loss:
            postfix["eval"] = f"{history.eval_loss[-1]:.4g}"
          bar.set_postfix(postfix, refresh=False)
      if checkpoints is not None and checkpoints.every and done % checkpoints.every == 0:
        checkpoints.save(current, history)
      if callback is not None and callback(current, history):
        break
  finally:
    history.seconds += _time.perf_counter() - began
    if bar is not None:
      if history.diverged:
        bar.set_postfix({"diverged at": history.diverged_at}, refresh=False)
      bar.close()
  return TrainResult(current, history)


@functools.lru_cache(maxsize=64)
def _training_run(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  steps: int,
  batch_size: int,
  options: ScanOptions | None,
) -> Callable[[PRNGKeyArray], tuple[TrainState, StepMetrics]]:
  def run(key: PRNGKeyArray) -> tuple[TrainState, StepMetrics]:
    # The seed convention of train.fit: the run key makes the parameters and the data.
    k_run, _ = jax.random.split(key)
    state = init_state(cell, task, k_run, optimizer)

    def body(state: TrainState, _: None) -> tuple[TrainState, StepMetrics]:
      return train_step(cell, task, optimizer, state, batch_size=batch_size, options=options)

    return jax.lax.scan(body, state, length=steps)

  return run


def train_many_seeds(
  cell: Cell,
  task: Task,
  keys: PRNGKeyArray,
  *,
  steps: int,
  batch_size: int = 64,
  optimizer: optax.GradientTransformation | None = None,
  mesh: Mesh | None = None,
  axis: str | None = None,
  options: ScanOptions | None = None,
) -> tuple[TrainState, StepMetrics]:
  """Train one model per key, all at once: ``jax.vmap`` over keys, seeds split over devices.

  Run ``i`` is the run of :func:`gatejax.train.fit` with ``key=keys[i]`` (same parameters,
  same batches, same updates; up to float32 rounding, since the batched matrix products
  may round differently), without evaluation or divergence checks.

  Args:
    cell, task: the model and task.
    keys: a vector of ``n`` keys.
    steps: updates per run.
    batch_size: sequences per step.
    optimizer: an optax transformation (default :func:`gatejax.train.make_optimizer`).
    mesh, axis: where to split the seeds, as in :func:`~gatejax.train.sweep`.
    options: a :class:`~gatejax.ScanOptions`: how every sequence runs.

  Returns:
    ``(states, metrics)``: the final :class:`~gatejax.train.TrainState` of every run
    (leading axis ``n``) and every step's :class:`~gatejax.train.StepMetrics`,
    shape ``(n, steps)``.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> states, metrics = train.train_many_seeds(gj.rnn(4), tasks.adding(5), keys,
    ...                                          steps=3, batch_size=4)
    >>> metrics.loss.shape, states.params.cell.w_h.shape
    ((2, 3), (2, 4, 4))
  """
  if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
    raise ValueError(f"steps must be an int >= 0, got {steps!r}")
  if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
    raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
  _checks.scan_options(options)
  optimizer = make_optimizer() if optimizer is None else optimizer
  run = _training_run(cell, task, optimizer, steps, batch_size, options)
  return sweep(run, keys, mesh=mesh, axis=axis)
