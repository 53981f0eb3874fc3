r"""Training any cell on a :class:`~gatejax.tasks.Task` with optax, through :func:`gatejax.scan`.

The model is the cell followed by a dense readout, ``ŷ = h W + b``, applied to the
output at each sequence's last valid step (``task.readout == "last"``) or at every
step (``"all"``). Everything is built around one pure step,

.. math:: (\text{state}_{s+1}, \text{metrics}_s) = \mathrm{train\_step}(\text{state}_s),

whose batch is drawn from ``fold_in(state.key, state.step)``. A :class:`TrainState`
therefore holds everything a run depends on (step, parameters, optimizer state, data
key): a run resumed from a saved state reproduces the uninterrupted run bit for bit,
and the pieces (:func:`batch_for_step`, :func:`step_on_batch`, :func:`apply_gradients`)
can be recombined, for example to shard the batch over devices.

:func:`fit` runs the jitted step in a Python loop with a progress bar, evaluation against
the task's baseline, a :class:`History` for plots and reports, and divergence detection:
a run whose loss becomes NaN or explodes is stopped and reported, never raised.

Gradients are clipped by their global norm before the optimizer (Pascanu, Mikolov &
Bengio 2013, the remedy for exploding gradients); ``grad_norm`` in the metrics is the
norm before clipping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import time as _time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from gatejax import _format, _validate, protocol
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.run import ScanOptions, scan
from gatejax.tasks import Batch, Task

if TYPE_CHECKING:
  from jax.sharding import Mesh

  from gatejax.checkpoint import Checkpoints
  from gatejax.parallel import _Placement

__all__ = [
  "EvalMetrics",
  "History",
  "ModelParams",
  "Readout",
  "StepMetrics",
  "TrainResult",
  "TrainState",
  "apply_gradients",
  "batch_for_step",
  "evaluate",
  "evaluation_batch",
  "fit",
  "init_model",
  "init_state",
  "loss_fn",
  "make_optimizer",
  "predict",
  "resolve_optimizer",
  "step_on_batch",
  "train_step",
]


# ---------------------------------------------------------------------------
# The model: a cell and a dense readout
# ---------------------------------------------------------------------------


class Readout(NamedTuple):
  """A dense layer from the hidden state to the task's outputs: ``ŷ = h w + b``."""

  w: Float[Array, "hidden output"]
  b: Float[Array, " output"]


class ModelParams(NamedTuple):
  """The parameters of a model: the ``cell``'s own and the ``readout``'s."""

  cell: Any
  readout: Readout


def _check_cell_task(cell: Any, task: Any) -> None:
  _validate.cell(cell)
  if not isinstance(task, Task):
    raise TypeError(
      f"task must be a gatejax.tasks.Task (from tasks.adding, ...), got {type(task).__name__}"
    )


def init_model(cell: Cell, task: Task, key: PRNGKeyArray) -> ModelParams:
  """Initial parameters: ``cell.init`` for the cell, LeCun normal ``w`` and zero ``b`` for the readout.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> params = train.init_model(gj.lstm(8), tasks.adding(10), jax.random.key(0))
    >>> params.cell.w_x.shape, params.readout.w.shape
    ((2, 32), (8, 1))
  """
  _check_cell_task(cell, task)
  k_cell, k_readout = jax.random.split(key)
  w = jax.nn.initializers.lecun_normal()(
    k_readout, (cell.hidden_size, task.output_size), jnp.float32
  )
  return ModelParams(
    cell=cell.init(k_cell, task.input_size),
    readout=Readout(w=w, b=jnp.zeros((task.output_size,), jnp.float32)),
  )


def _dense(h: Array, readout: Readout) -> Array:
  return h @ readout.w + jnp.reshape(readout.b, (1,) * (h.ndim - 1) + readout.b.shape)


def predict(
  cell: Cell, task: Task, params: ModelParams, batch: Batch, *, options: ScanOptions | None = None
) -> Array:
  """The model's predictions for ``batch``: the readout of the last valid or of every output.

  ``options`` (a :class:`~gatejax.ScanOptions`) chooses how the sequence runs, here and in
  every function of this module that takes it.

  For a ``"last"`` task this is the readout of ``ys[lengths - 1]`` per sequence
  (``ys[-1]`` without lengths), shape ``(batch, output_size)``; for an ``"all"`` task
  the readout of every step, ``(time, batch, output_size)`` (zero hidden state at
  padded steps).

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> cell, task = gj.gru(8), tasks.copy_memory(5)
    >>> params = train.init_model(cell, task, jax.random.key(0))
    >>> batch = task.sample(jax.random.key(1), 3)
    >>> train.predict(cell, task, params, batch).shape
    (25, 3, 9)
  """
  _, ys = scan(cell, params.cell, batch.xs, lengths=batch.lengths, options=options)
  if task.readout == "all":
    return _dense(ys, params.readout)
  if batch.lengths is None:
    last = ys[-1]
  else:
    # Outputs past a sequence's length are zero, so its last valid output sits at length - 1.
    index = jnp.maximum(batch.lengths - 1, 0)
    last = jnp.take_along_axis(ys, index[None, :, None], axis=0)[0]
  return _dense(last, params.readout)


def loss_fn(
  cell: Cell, task: Task, params: ModelParams, batch: Batch, *, options: ScanOptions | None = None
) -> Float[Array, ""]:
  """``task.loss(predict(cell, task, params, batch), batch)``."""
  return task.loss(predict(cell, task, params, batch, options=options), batch)


# ---------------------------------------------------------------------------
# The optimizer and the pure training step
# ---------------------------------------------------------------------------

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
  "adam": optax.adam,
  "adamw": optax.adamw,
  "rmsprop": optax.rmsprop,
  "sgd": optax.sgd,
}


def make_optimizer(
  *,
  learning_rate: float | optax.Schedule = 1e-3,
  clip_norm: float | None = 1.0,
  optimizer: str = "adam",
) -> optax.GradientTransformation:
  r"""``optax.chain(optax.clip_by_global_norm(clip_norm), optax.<optimizer>(learning_rate))``.

  Clipping rescales the whole gradient :math:`g` to :math:`g \cdot \min(1, c / \lVert g
  \rVert_2)`, so a single exploding step cannot throw the parameters away while its
  direction is kept (Pascanu et al. 2013). ``clip_norm=None`` disables it.

  Equal arguments return the same object (the factory is cached), so a jitted step
  that takes the optimizer as a static argument is not recompiled.

  Args:
    learning_rate: a finite float > 0, or an optax schedule.
    clip_norm: the largest global gradient norm (finite, > 0), or ``None`` for no clipping.
    optimizer: ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"sgd"``.

  Example:
    >>> import jax.numpy as jnp
    >>> from gatejax import train
    >>> opt = train.make_optimizer(learning_rate=1.0, clip_norm=1.0, optimizer="sgd")
    >>> grads = {"w": jnp.array([3.0, 4.0])}                   # norm 5
    >>> updates, _ = opt.update(grads, opt.init(grads))
    >>> updates["w"].tolist()                                  # -g / 5, norm 1
    [-0.6000000238418579, -0.800000011920929]
  """
  if optimizer not in _OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
  learning_rate = _learning_rate(learning_rate)
  clip_norm = _positive_float("clip_norm", clip_norm, "or None for no clipping")
  return _make_optimizer(learning_rate, clip_norm, optimizer)


def _positive_float(name: str, value: Any, none: str | None = None) -> float | None:
  """``value`` as a float, checked to be finite and > 0 (``None`` passes when ``none`` says so)."""
  if value is None and none is not None:
    return None
  if not isinstance(value, numbers.Real) or isinstance(value, bool):
    expected = "a float" + (f" {none}" if none else "")
    raise TypeError(f"{name} must be {expected}, got {value!r:.80}")
  number = float(value)
  # inf passes a bare "> 0" (and NaN fails it with a misleading message).
  if not (math.isfinite(number) and number > 0):
    expected = "a finite number > 0" + (f" {none}" if none else "")
    raise ValueError(f"{name} must be {expected}, got {value!r}")
  return number


def _learning_rate(value: Any) -> float | optax.Schedule:
  if callable(value):
    return cast(optax.Schedule, value)
  if not isinstance(value, numbers.Real) or isinstance(value, bool):
    raise TypeError(f"learning_rate must be a float or an optax schedule, got {value!r:.80}")
  number = float(value)
  if not (math.isfinite(number) and number > 0):
    # A negative rate would run gradient ascent, zero would train nothing.
    raise ValueError(
      f"learning_rate must be a finite number > 0 or an optax schedule, got {value!r}"
    )
  return number


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _make_optimizer(
  learning_rate: float | optax.Schedule, clip_norm: float | None, optimizer: str
) -> optax.GradientTransformation:
  base = _OPTIMIZERS[optimizer](learning_rate)
  if clip_norm is None:
    return base
  return optax.chain(optax.clip_by_global_norm(clip_norm), base)


class TrainState(NamedTuple):
  """Everything a run depends on, a pytree that can be saved and restored.

  Attributes:
    step: the number of updates done, an int32 scalar array.
    params: :class:`ModelParams`.
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
    metric: ``task.metric`` on the batch, or ``None`` for a task without one.
  """

  loss: Float[Array, ""]
  grad_norm: Float[Array, ""]
  metric: Float[Array, ""] | None


class EvalMetrics(NamedTuple):
  """The loss and, if the task has one, the metric on an evaluation batch."""

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
  _check_cell_task(cell, task)
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
  metric = None if task.metric is None else task.metric(predictions, batch)
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
  """The loss and metric of ``params`` on ``batch``, jitted."""
  predictions = predict(cell, task, params, batch, options=options)
  metric = None if task.metric is None else task.metric(predictions, batch)
  return EvalMetrics(loss=task.loss(predictions, batch), metric=metric)


def evaluation_batch(task: Task, key: PRNGKeyArray, batch_size: int) -> Batch:
  """The evaluation set: the whole split for a finite data set, else ``batch_size`` fresh samples."""
  if task.dataset is not None:
    return task.dataset()
  return task.sample(key, batch_size)


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


_SERIES = ("loss", "grad_norm", "metric", "eval_loss", "eval_metric")


@dataclasses.dataclass
class History:
  """What a run recorded, in plain Python lists (JSON-ready through :meth:`to_dict`).

  Attributes:
    task: the task's name.
    baseline: the task's baseline loss.
    metric_name: the task's metric name, or ``None``.
    step: the step index ``s`` of each record (the loss of the parameters after ``s``
      updates, on batch ``s``).
    loss, grad_norm: per record; ``grad_norm`` before clipping.
    metric: per record, the task metric on the training batch (empty without a metric).
    eval_step: the number of updates done at each evaluation (0 is before training).
    eval_loss, eval_metric: per evaluation, on the fixed evaluation set.
    diverged: whether the run was stopped for a NaN/infinite or exploding loss.
    diverged_at: the step whose loss diverged, or ``None``.
    initial_loss: the loss of the first step of the run (the divergence reference).
    seconds: wall-clock time spent in :func:`fit`, summed over resumed segments.
  """

  task: str = ""
  baseline: float = math.nan
  metric_name: str | None = None
  step: list[int] = dataclasses.field(default_factory=list)
  loss: list[float] = dataclasses.field(default_factory=list)
  grad_norm: list[float] = dataclasses.field(default_factory=list)
  metric: list[float] = dataclasses.field(default_factory=list)
  eval_step: list[int] = dataclasses.field(default_factory=list)
  eval_loss: list[float] = dataclasses.field(default_factory=list)
  eval_metric: list[float] = dataclasses.field(default_factory=list)
  diverged: bool = False
  diverged_at: int | None = None
  initial_loss: float | None = None
  seconds: float = 0.0

  def to_dict(self) -> dict[str, Any]:
    """A dict of plain JSON values (non-finite floats as the strings ``"nan"``, ``"inf"``)."""
    return _format.jsonable(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> History:
    """The inverse of :meth:`to_dict`."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
      raise ValueError(f"data has fields History does not know: {sorted(unknown)}")
    values = dict(data)
    for name in _SERIES:
      if name in values:
        values[name] = [_format.read_float(v) for v in values[name]]
    for name in ("step", "eval_step"):
      if name in values:
        values[name] = [int(v) for v in values[name]]
    if "baseline" in values:
      values["baseline"] = _format.read_float(values["baseline"])
    if values.get("initial_loss") is not None:
      values["initial_loss"] = _format.read_float(values["initial_loss"])
    return cls(**values)

  def arrays(self) -> dict[str, np.ndarray]:
    """The series as NumPy arrays (``step``, ``loss``, ..., ``eval_metric``)."""
    names = ("step", *_SERIES[:3], "eval_step", *_SERIES[3:])
    return {name: np.asarray(getattr(self, name)) for name in names}


class TrainResult(NamedTuple):
  """What :func:`fit` returns: the final :class:`TrainState` and the :class:`History`."""

  state: TrainState
  history: History

  @property
  def params(self) -> ModelParams:
    """The trained parameters, ``state.params``."""
    return self.state.params


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
  if not isinstance(value, int | np.integer) or isinstance(value, bool):
    raise TypeError(f"{name} must be an int, got {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


_DEFAULT_LEARNING_RATE = 1e-3
_DEFAULT_CLIP_NORM = 1.0


def resolve_optimizer(
  optimizer: str | optax.GradientTransformation | None = None,
  *,
  learning_rate: float | optax.Schedule = _DEFAULT_LEARNING_RATE,
  clip_norm: float | None = _DEFAULT_CLIP_NORM,
) -> optax.GradientTransformation:
  """The optax transformation a run uses: the one place where an optimizer is chosen.

  ``optimizer`` is an ``optax.GradientTransformation``, used as it is, or a name (``None``
  is ``"adam"``) that :func:`make_optimizer` builds with ``learning_rate`` and
  ``clip_norm``. A transformation carries its own learning rate and clipping, so passing
  either beside one is an error rather than a value silently ignored.

  Raises:
    TypeError: ``optimizer`` is neither a name, a transformation nor ``None``.
    ValueError: an unknown name, a bad ``learning_rate`` or ``clip_norm``, or either of
      them set to a non-default value beside a transformation.

  Example:
    >>> import optax
    >>> from gatejax import train
    >>> train.resolve_optimizer("sgd", learning_rate=0.1) is train.make_optimizer(
    ...     learning_rate=0.1, optimizer="sgd")
    True
    >>> train.resolve_optimizer(optax.adam(1e-2), learning_rate=0.1)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate=0.1 is given beside an optax transformation, which has its own; ...
  """
  # Checked even beside a transformation: a bad value is a mistake either way.
  learning_rate = _learning_rate(learning_rate)
  clip_norm = _positive_float("clip_norm", clip_norm, "or None for no clipping")
  if optimizer is None or isinstance(optimizer, str):
    return make_optimizer(
      learning_rate=learning_rate, clip_norm=clip_norm, optimizer=optimizer or "adam"
    )
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(
      f"optimizer must be a name, an optax.GradientTransformation or None, got {optimizer!r:.80}"
    )
  for name, value, default in (
    ("learning_rate", learning_rate, _DEFAULT_LEARNING_RATE),
    ("clip_norm", clip_norm, _DEFAULT_CLIP_NORM),
  ):
    if value != default:
      raise ValueError(
        f"{name}={value!r} is given beside an optax transformation, which has its own; "
        "build the transformation with it (e.g. optax.chain(optax.clip_by_global_norm(c), "
        "optax.adam(lr))) or pass the optimizer's name instead"
      )
  return optimizer


def fit(
  cell: Cell,
  task: Task,
  *,
  key: PRNGKeyArray,
  steps: int,
  batch_size: int = 64,
  learning_rate: float | optax.Schedule = _DEFAULT_LEARNING_RATE,
  clip_norm: float | None = _DEFAULT_CLIP_NORM,
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

  Seeds: ``key`` splits into the run key (parameters and data, :func:`init_state`)
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

  Checkpoints: with ``checkpoints`` (a :class:`~gatejax.checkpoint.Checkpoints` or a
  directory) the run starts from the latest checkpoint there, if any and unless ``state``
  is given, saves every ``every`` steps (a directory: every ``max(1, steps // 10)``) and
  saves the final state. A directory also records ``key`` and ``batch_size`` and refuses
  to continue a run that had others; a :class:`~gatejax.checkpoint.Checkpoints` records
  its own ``run``. Either must belong to this cell, task and optimizer.

  Data parallelism: with ``mesh`` (a one-dimensional device mesh such as
  :func:`gatejax.parallel.data_mesh`, possibly spanning the devices of several processes
  after ``jax.distributed.initialize``) every batch is split over the devices along its
  batch axis (:func:`gatejax.parallel.shard_task`) and the state is replicated
  (:func:`gatejax.parallel.replicate`); the result equals the single-device run's up to
  float32 rounding in the gradient sums. ``batch_size`` and ``eval_batch_size`` must be
  multiples of the number of devices.

  Args:
    cell: any cell (:mod:`gatejax.protocol`).
    task: a :class:`~gatejax.tasks.Task`.
    key: the run's PRNG key.
    steps: the total number of updates.
    batch_size: training sequences per step.
    learning_rate, clip_norm: for an optimizer given by name (see
      :func:`resolve_optimizer`); an error beside an ``optax.GradientTransformation``
      unless left at their defaults.
    optimizer: ``None`` (Adam), a name for :func:`make_optimizer`, or an optax
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

    ``checkpoints=`` and ``mesh=`` go together (``train.fit(..., checkpoints="runs/gru",
    mesh=parallel.data_mesh())``); the examples of :func:`gatejax.checkpoint.fit` and
    :func:`gatejax.parallel.fit` run each, and ``examples/distributed.py`` both across
    processes.
  """
  _check_cell_task(cell, task)
  steps = _positive_int("steps", steps, 0)
  batch_size = _positive_int("batch_size", batch_size)
  eval_batch_size = _positive_int("eval_batch_size", eval_batch_size)
  log_every = _positive_int("log_every", log_every)
  eval_every = (
    max(1, steps // 10) if eval_every is None else _positive_int("eval_every", eval_every, 0)
  )
  divergence_threshold = _positive_float(
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

  placement = None
  if mesh is not None:
    from gatejax import parallel

    placement = parallel._Placement.of(mesh, axis)
    placement.check_batch_size("batch_size", batch_size)
    if eval_every and eval_task.dataset is None:
      placement.check_batch_size("eval_batch_size", eval_batch_size)
  elif axis is not None:
    raise ValueError("axis names the mesh axis that splits the batch: it needs a mesh")

  with contextlib.ExitStack() as stack:
    ckpts = None
    if checkpoints is not None:
      from gatejax import checkpoint

      ckpts = checkpoint._for_fit(
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
        state, history = checkpoint._resume(
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
