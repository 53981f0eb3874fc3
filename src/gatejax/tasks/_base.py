r"""What every task shares: ``Task``, ``Batch``, the losses and metrics, scaled accuracy.

Private: everything here is reached, and documented, through :mod:`gatejax.tasks`.

A task is a pure, hashable value (SPEC §7). Its parameters live in a frozen dataclass, a
*spec*, and the task's functions (``sample``, ``loss``, ``metric``, ``dataset``) are the
spec's methods wrapped in small frozen dataclasses. Two tasks built with the same
arguments are therefore equal and hash alike, even when built apart, and every jitted
function that takes a task as a static argument (a training step) compiles once for them.

Sampling is jitted once per ``(task, batch_size, length)``: ``sample(key, batch_size)``
draws at the task's training lengths, ``sample(key, batch_size, length=n)`` at exactly
``n`` steps.

Scored steps: ``"last"`` tasks score the output at each sequence's last valid step
(predictions ``(batch, output_size)``, targets ``(batch,)``); ``"all"`` tasks score
outputs per step (predictions ``(time, batch, output_size)``, targets ``(time, batch)``),
every step when ``Batch.mask`` is ``None``, else the steps where it is True.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from gatejax._jit import bounded_jit


class Batch(NamedTuple):
  """One batch of a task, time-major.

  Attributes:
    xs: inputs ``(time, batch, input_size)``, float32 (one-hot tokens for the token tasks;
      zero past each sequence's length).
    targets: ``(batch,)`` float32 (regression), ``(batch,)`` int32 (a class per
      sequence, read at its last valid step) or ``(time, batch)`` int32 (a class per
      step; ``0`` where the step is not scored).
    lengths: ``(batch,)`` int32 valid lengths (sequences are right-padded with zeros),
      or ``None`` when every sequence has all ``time`` steps.
    mask: ``(time, batch)`` bool, True at the steps that ``loss`` and ``metric`` score,
      for tasks that score only some steps; ``None`` for last-step tasks and for tasks
      that score every step.
  """

  xs: Float[Array, "time batch input"]
  targets: Array
  lengths: Int[Array, " batch"] | None = None
  mask: Bool[Array, "time batch"] | None = None


class Task(NamedTuple):
  """A supervised sequence task: how to sample it, how to score it, and what chance scores.

  Attributes:
    name: a short name (``"adding"``, ``"copy"``, ``"parity"``, ...).
    time: the number of steps of a training batch (the padded length when lengths vary).
    input_size: features per step.
    output_size: what the model's readout must produce per prediction (classes for
      classification, logits).
    readout: ``"last"``, the loss reads the output at each sequence's last valid step,
      or ``"all"``, it reads the output of every step (only the masked ones when the
      batch has a ``mask``).
    kind: ``"regression"`` or ``"classification"``.
    sample: ``sample(key, batch_size, *, length=None) -> Batch``, deterministic per key:
      the task's training lengths, or exactly ``length`` steps when given.
    loss: ``loss(predictions, batch) -> scalar``; predictions ``(batch, output_size)``
      for ``"last"``, ``(time, batch, output_size)`` for ``"all"``.
    baseline: the expected loss of the trivial predictor named in the factory's docs.
    metric: ``metric(predictions, batch) -> scalar`` (higher is better) or ``None``.
    metric_name: what ``metric`` measures (``"accuracy"``), or ``None``.
    dataset: for a finite data set, ``dataset() -> Batch`` returns the whole split
      (evaluation can then be exact); ``None`` for generated tasks.
    chance: the accuracy of guessing uniformly among the values a scored target can take
      (``1/2`` for parity), for tasks whose metric is an accuracy; ``None`` otherwise.
      See :func:`scaled_accuracy`.
  """

  name: str
  time: int
  input_size: int
  output_size: int
  readout: Literal["last", "all"]
  kind: Literal["regression", "classification"]
  sample: Callable[..., Batch]
  loss: Callable[[Array, Batch], Array]
  baseline: float
  metric: Callable[[Array, Batch], Array] | None = None
  metric_name: str | None = None
  dataset: Callable[[], Batch] | None = None
  chance: float | None = None


# Reached and documented as gatejax.tasks.Task and .Batch (this module is private): the
# name their signatures and reprs show, and what pickle looks up. The annotations above are
# objects, not strings (no `from __future__ import annotations` here), so resolving them
# does not depend on this module name.
Task.__module__ = Batch.__module__ = "gatejax.tasks"


# ---------------------------------------------------------------------------
# Losses and metrics
# ---------------------------------------------------------------------------


def cross_entropy(
  logits: Float[Array, "*steps classes"],
  labels: Int[Array, "*steps"],
  mask: Bool[Array, "*steps"] | None = None,
) -> Float[Array, ""]:
  """Mean softmax cross-entropy of integer ``labels`` under ``logits``, over the masked entries.

  Computed in float32 whatever the logits' dtype (bfloat16 would round the loss to two
  or three digits).

  Args:
    logits: ``(*steps, classes)``.
    labels: ``(*steps)`` integer classes.
    mask: ``(*steps)`` bool, the entries to average over; ``None`` for all of them.

  Example:
    >>> import jax.numpy as jnp
    >>> from gatejax.tasks import cross_entropy
    >>> logits = jnp.zeros((3, 4))
    >>> round(float(cross_entropy(logits, jnp.array([0, 1, 2]))), 4)  # log 4
    1.3863
  """
  per_item = optax.losses.softmax_cross_entropy_with_integer_labels(
    logits.astype(jnp.float32), labels
  )
  if mask is None:
    return jnp.mean(per_item)
  total = jnp.sum(jnp.where(mask, per_item, jnp.float32(0)))
  return total / jnp.maximum(jnp.sum(mask, dtype=jnp.int32), 1).astype(jnp.float32)


def accuracy(
  logits: Float[Array, "*steps classes"],
  labels: Int[Array, "*steps"],
  mask: Bool[Array, "*steps"] | None = None,
) -> Float[Array, ""]:
  """The fraction of (masked) entries whose ``argmax`` is the label, pooled over all of them.

  Counted in int32, and a perfect score is exactly 1 (a float32 mean may round below it).

  Example:
    >>> import jax.numpy as jnp
    >>> from gatejax.tasks import accuracy
    >>> logits = jnp.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    >>> round(float(accuracy(logits, jnp.array([0, 1, 1]))), 4)
    0.6667
    >>> float(accuracy(logits, jnp.array([0, 1, 1]), mask=jnp.array([True, False, True])))
    1.0
  """
  correct = jnp.argmax(logits, axis=-1) == labels
  if mask is None:
    return _fraction(jnp.sum(correct, dtype=jnp.int32), jnp.int32(labels.size))
  return _fraction(jnp.sum(correct & mask, dtype=jnp.int32), jnp.sum(mask, dtype=jnp.int32))


def _fraction(hits: Array, total: Array) -> Array:
  # All hits is exactly 1: under jit XLA may divide by a constant total as a product with
  # its rounded reciprocal (355 * (1/355) = 0.99999994 in float32).
  ratio = hits.astype(jnp.float32) / jnp.maximum(total, 1).astype(jnp.float32)
  return jnp.where(hits == total, jnp.float32(1), ratio)


def sequence_accuracy(
  predictions: Float[Array, "*steps classes"], batch: Batch
) -> Float[Array, ""]:
  """The fraction of sequences whose every scored prediction is right ("all reads correct").

  For a ``"last"`` task this is the accuracy; for an ``"all"`` task a sequence counts
  when the ``argmax`` is right at every step its ``mask`` marks (every step without a
  mask).

  Args:
    predictions: logits, ``(batch, classes)`` or ``(time, batch, classes)``.
    batch: the batch they predict.

  Example:
    >>> import jax
    >>> from gatejax import tasks
    >>> task = tasks.flip_flop(16)
    >>> batch = task.sample(jax.random.key(0), 8)
    >>> perfect = jax.nn.one_hot(batch.targets, 2)
    >>> float(tasks.sequence_accuracy(perfect, batch))
    1.0
  """
  if not jnp.issubdtype(batch.targets.dtype, jnp.integer):
    raise TypeError(
      f"sequence_accuracy needs integer targets (a classification task), got {batch.targets.dtype}"
    )
  correct = jnp.argmax(predictions, axis=-1) == batch.targets
  if correct.ndim == 2:  # (time, batch): every scored step of a sequence
    scored = jnp.ones_like(correct) if batch.mask is None else batch.mask
    correct = jnp.all(correct | ~scored, axis=0)
  return _fraction(jnp.sum(correct, dtype=jnp.int32), jnp.int32(correct.size))


def scaled_accuracy(accuracy: ArrayLike, chance: float) -> Array:
  r"""Accuracy rescaled so that chance is 0 and perfect is 1: :math:`(a - c) / (1 - c)`.

  The score of Grazzi et al. 2025 (Table 3) and Beck et al. 2024 (xLSTM), which makes
  tasks with different numbers of classes comparable. Below-chance accuracy gives a
  negative score.

  Args:
    accuracy: an accuracy, or an array of them (a curve over lengths).
    chance: the task's :attr:`Task.chance`, in ``[0, 1)``.

  Example:
    >>> from gatejax import tasks
    >>> task = tasks.cycle_navigation()
    >>> round(float(tasks.scaled_accuracy(0.6, task.chance)), 4)  # chance 1/5
    0.5
  """
  if not isinstance(chance, int | float | np.floating) or isinstance(chance, bool):
    raise TypeError(f"chance must be a number in [0, 1), got {type(chance).__name__}")
  if not 0 <= chance < 1:
    raise ValueError(f"chance must be in [0, 1), got {chance}")
  return (jnp.asarray(accuracy, jnp.float32) - jnp.float32(chance)) / jnp.float32(1 - chance)


# ---------------------------------------------------------------------------
# Building a task: a spec (the parameters) and its methods as hashable values
# ---------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
  if not isinstance(value, int | np.integer) or isinstance(value, bool):
    raise TypeError(f"{name} must be an int, got {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def _check_probability(name: str, value: object) -> float:
  if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool):
    raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
  if not 0 <= value <= 1:  # NaN fails both comparisons
    raise ValueError(f"{name} must be in [0, 1], got {value}")
  return float(value)


def _check_predictions(task: str, predictions: Array, shape: tuple[int, ...]) -> None:
  if tuple(predictions.shape) != shape:
    raise ValueError(f"predictions for {task} must have shape {shape}, got {predictions.shape}")


@dataclasses.dataclass(frozen=True)
class _Spec:
  """A task's parameters (the dataclass fields) and the pure functions that read them.

  Frozen dataclasses compare by class and fields, so two specs of different tasks never
  compare equal even when their fields do (NamedTuples would).
  """

  name: ClassVar[str]

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    raise NotImplementedError

  def check_length(self, length: int) -> None:
    """Raise ``ValueError`` naming ``length`` when the task cannot be drawn at it."""

  @property
  def output_size(self) -> int:
    raise NotImplementedError

  def loss(self, predictions: Array, batch: Batch) -> Array:
    # Classification by default: logits per scored target.
    _check_predictions(self.name, predictions, (*batch.targets.shape, self.output_size))
    return cross_entropy(predictions, batch.targets, batch.mask)

  def metric(self, predictions: Array, batch: Batch) -> Array:
    _check_predictions(self.name, predictions, (*batch.targets.shape, self.output_size))
    return accuracy(predictions, batch.targets, batch.mask)

  def dataset(self) -> Batch:
    raise NotImplementedError


@bounded_jit(static_argnames=("spec", "batch_size", "length"))
def _draw(spec: _Spec, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
  # One jitted function for every task, keyed by the (hashable) spec: an equal task built
  # elsewhere reuses the compilation, one per (batch_size, length), within the library's
  # bound on compiled programs.
  return spec.draw(key, batch_size, length)


@dataclasses.dataclass(frozen=True)
class _Sampler:
  """``sample(key, batch_size, *, length=None)`` of a task, equal for equal specs."""

  spec: _Spec

  def __call__(self, key: PRNGKeyArray, batch_size: int, *, length: int | None = None) -> Batch:
    batch_size = _check_int("batch_size", batch_size, 1)
    if length is not None:
      length = _check_int("length", length, 1)
      self.spec.check_length(length)
    return _draw(self.spec, key, batch_size, length)


@bounded_jit(static_argnames=("spec", "method"))
def _score(spec: _Spec, method: str, predictions: Array, batch: Batch) -> Array:
  # Jitted so that a call outside a training step (an evaluation, a test) compiles one
  # program per shape instead of dispatching each operation; inside a jitted step it
  # is inlined.
  return getattr(spec, method)(predictions, batch)


@dataclasses.dataclass(frozen=True)
class _Method:
  """A spec's method (``loss``, ``metric``, ``dataset``) as a value equal for equal specs.

  A bound method would not do: Python compares bound methods by the identity of their
  object, so equal tasks built apart would differ and retrace every jitted caller.
  """

  spec: _Spec
  method: str

  def __call__(self, *args: Any) -> Any:
    if self.method == "dataset":
      return self.spec.dataset()
    return _score(self.spec, self.method, *args)


def _task(
  spec: _Spec,
  *,
  time: int,
  input_size: int,
  readout: Literal["last", "all"],
  baseline: float,
  chance: float | None,
  kind: Literal["regression", "classification"] = "classification",
  metric: bool = True,
  dataset: bool = False,
  name: str | None = None,
) -> Task:
  return Task(
    name=spec.name if name is None else name,
    time=time,
    input_size=input_size,
    output_size=spec.output_size,
    readout=readout,
    kind=kind,
    sample=_Sampler(spec),
    loss=_Method(spec, "loss"),
    baseline=baseline,
    metric=_Method(spec, "metric") if metric else None,
    metric_name="accuracy" if metric else None,
    dataset=_Method(spec, "dataset") if dataset else None,
    chance=chance,
  )


# ---------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------


def _uniform_int(u: Array, low: Array | int, high: Array | int) -> Array:
  """Integers uniform in ``[low, high)`` from uniforms ``u`` in ``[0, 1)``, elementwise.

  One ``uniform`` draw per task rather than one ``randint`` per quantity: each random
  draw is a threefry hash that XLA compiles separately, and compiling them dominated
  the cost of a first ``sample``.
  """
  low, high = jnp.asarray(low, jnp.int32), jnp.asarray(high, jnp.int32)
  span = high - low
  k = jnp.floor(u * span.astype(jnp.float32)).astype(jnp.int32)
  return low + jnp.minimum(k, span - 1)  # float rounding may give u * span == span


def _choose(scores: Array, k: int) -> Array:
  """For each column of ``scores`` ``(n, batch)``, the rows of its ``k`` largest, ``(k, batch)``.

  With ``scores`` i.i.d. uniforms this draws ``k`` of ``n`` without replacement, in a
  uniformly random order; with ``log p + Gumbel`` scores it draws them one after another
  in proportion to ``p`` (the Gumbel top-k trick), as ``numpy.random.choice(n, k,
  replace=False, p=p)`` does.
  """
  _, rows = jax.lax.top_k(jnp.transpose(scores), k)
  return jnp.transpose(rows).astype(jnp.int32)


def _gumbel(u: Array) -> Array:
  tiny = jnp.finfo(jnp.float32).tiny
  return -jnp.log(-jnp.log(jnp.clip(u, tiny, 1 - 1e-7)))


def _one_hot(tokens: Array, size: int) -> Array:
  """One-hot float32 inputs; a negative token (padding) is the zero vector."""
  return jax.nn.one_hot(tokens, size, dtype=jnp.float32)


def _token_batch(
  tokens: Int[Array, "time batch"],
  lengths: Int[Array, " batch"] | None,
  size: int,
  targets: Array,
) -> Batch:
  """A batch of one-hot tokens, zero past each sequence's length."""
  if lengths is not None:
    steps = jnp.arange(tokens.shape[0], dtype=jnp.int32)[:, None]
    tokens = jnp.where(steps < lengths[None, :], tokens, -1)
  return Batch(xs=_one_hot(tokens, size), targets=targets, lengths=lengths)
