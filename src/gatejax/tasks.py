r"""Long-range sequence tasks, each a pure function of a PRNG key, time-major like :func:`gatejax.scan`.

A :class:`Task` is an immutable value (a ``NamedTuple`` of ints, strings and pure
functions, hashable so that it can be a static argument of ``jax.jit``). Its ``sample``
draws a :class:`Batch` from a key; its ``loss`` scores a model's predictions on that
batch; its ``baseline`` is the loss of the trivial predictor that a model must beat
to show it has used the sequence at all.

===================  =====  =====  ======  =======  ==========================================
task                 input  out    time    readout  baseline (trivial predictor)
===================  =====  =====  ======  =======  ==========================================
:func:`adding`       2      1      T       last     1/6: always predict 1 (MSE)
:func:`copy_memory`  S + 2  S + 1  D + 2K  all      K log S / (D + 2K): blanks, then uniform
:func:`digits`       1      10     64      last     log 10: uniform over the classes
===================  =====  =====  ======  =======  ==========================================

(``S`` symbols, delay ``D``, ``K`` symbols to copy.)

Readouts: ``"last"`` tasks are scored on the model's output at each sequence's last
valid step, predictions of shape ``(batch, output_size)``; ``"all"`` tasks on every
step's output, ``(time, batch, output_size)``. Classification predictions are logits.

The factories are cached: ``adding(20) is adding(20)``, so a jitted training step
compiled for one task value is reused, not retraced, for an equal one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = ["Batch", "Task", "adding", "copy_memory", "digits"]


class Batch(NamedTuple):
  """One batch of a task, time-major.

  Attributes:
    xs: inputs ``(time, batch, input_size)``, float32.
    targets: ``(batch,)`` float32 (regression), ``(batch,)`` int32 (classification of a
      whole sequence) or ``(time, batch)`` int32 (a label per step).
    lengths: ``(batch,)`` int32 valid lengths (sequences are right-padded with zeros),
      or ``None`` when every sequence has the full length.
  """

  xs: Float[Array, "time batch input"]
  targets: Array
  lengths: Int[Array, " batch"] | None = None


class Task(NamedTuple):
  """A supervised sequence task: how to sample it, score it, and what chance scores.

  Attributes:
    name: a short name (``"adding"``, ``"copy"``, ``"digits"``).
    time: the number of steps of every batch (the padded length with variable lengths).
    input_size: features per step.
    output_size: what the model's readout must produce per prediction (classes for
      classification, logits).
    readout: ``"last"``, the loss reads the output at each sequence's last valid step,
      or ``"all"``, it reads every step's output.
    kind: ``"regression"`` or ``"classification"``.
    sample: ``sample(key, batch_size) -> Batch``, deterministic per key.
    loss: ``loss(predictions, batch) -> scalar``; predictions ``(batch, output_size)``
      for ``"last"``, ``(time, batch, output_size)`` for ``"all"``.
    baseline: the expected loss of the trivial predictor named in the factory's docs.
    metric: ``metric(predictions, batch) -> scalar`` (higher is better) or ``None``.
    metric_name: what ``metric`` measures (``"accuracy"``), or ``None``.
    dataset: for a finite data set, ``dataset() -> Batch`` returns the whole split
      (evaluation can then be exact); ``None`` for generated tasks.
  """

  name: str
  time: int
  input_size: int
  output_size: int
  readout: Literal["last", "all"]
  kind: Literal["regression", "classification"]
  sample: Callable[[PRNGKeyArray, int], Batch]
  loss: Callable[[Array, Batch], Array]
  baseline: float
  metric: Callable[[Array, Batch], Array] | None = None
  metric_name: str | None = None
  dataset: Callable[[], Batch] | None = None


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
  if not isinstance(value, int | np.integer) or isinstance(value, bool):
    raise TypeError(f"{name} must be an int, got {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def _sampler(draw: Callable[[PRNGKeyArray, int], Batch]) -> Callable[[PRNGKeyArray, int], Batch]:
  """``draw`` with its batch size checked, jitted: one compilation per batch size, not per operation."""
  jitted = jax.jit(draw, static_argnums=1)

  def sample(key: PRNGKeyArray, batch_size: int) -> Batch:
    return jitted(key, _check_int("batch_size", batch_size, 1))

  return sample


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


def _check_predictions(task: str, predictions: Array, shape: tuple[int, ...]) -> None:
  if tuple(predictions.shape) != shape:
    raise ValueError(f"predictions for {task} must have shape {shape}, got {predictions.shape}")


def _cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean softmax cross-entropy of integer ``labels`` under ``logits`` (last axis classes)."""
  # In float32 whatever the logits' dtype: bfloat16 would round the loss to 2-3 digits.
  per_item = optax.losses.softmax_cross_entropy_with_integer_labels(
    logits.astype(jnp.float32), labels
  )
  return jnp.mean(per_item)


def _accuracy(logits: Array, labels: Array) -> Array:
  # Counting in int32 keeps a perfect score exactly 1 (a float32 mean may round below it).
  correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels, dtype=jnp.int32)
  return correct.astype(jnp.float32) / jnp.float32(labels.size)


# ---------------------------------------------------------------------------
# The adding problem
# ---------------------------------------------------------------------------


def adding(time: int, *, variable_length: bool = False, min_length: int | None = None) -> Task:
  r"""The adding problem (Hochreiter & Schmidhuber 1997) in the form of Le, Jaitly & Hinton 2015.

  Each step carries two features: a value :math:`u_t \sim U(0, 1)` and a mark
  :math:`m_t \in \{0, 1\}`. Exactly two steps are marked, one drawn uniformly from the
  first half of the sequence, ``[0, L // 2)``, and one from the second, ``[L // 2, L)``
  (``L`` the sequence's length). The target is the sum of the two marked values, read
  at the last step:

  .. math:: y = \sum_t m_t u_t, \qquad \text{loss} = \mathbb{E}\,(\hat y - y)^2

  The first mark lies at least ``L // 2`` steps before the end, so the task needs a
  memory of about half the sequence. Baseline: always predicting 1 (the mean of
  :math:`y`) scores the variance of a sum of two independent :math:`U(0, 1)`,
  :math:`2 / 12 = 1/6 \approx 0.167`.

  Args:
    time: the sequence length ``T`` (the padded length with ``variable_length``), >= 2.
    variable_length: draw each sequence's length uniformly from ``[min_length, T]``;
      steps past it are zero in both features and both marks lie inside it.
    min_length: the shortest length with ``variable_length`` (default ``max(2, T // 2)``).

  Returns:
    A :class:`Task` named ``"adding"``: input 2 (value, mark), output 1, readout
    ``"last"``, regression; targets ``(batch,)`` float32.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.adding(50)
    >>> batch = task.sample(jax.random.key(0), 4)
    >>> batch.xs.shape, batch.targets.shape
    ((50, 4, 2), (4,))
    >>> total = jnp.sum(batch.xs[..., 0] * batch.xs[..., 1], axis=0)
    >>> bool(jnp.allclose(total, batch.targets))
    True
  """
  time = _check_int("time", time, 2)
  if not isinstance(variable_length, bool):
    raise TypeError(f"variable_length must be a bool, got {type(variable_length).__name__}")
  if min_length is None:
    min_length = max(2, time // 2)
  elif not variable_length:
    raise ValueError("min_length only applies with variable_length=True")
  min_length = _check_int("min_length", min_length, 2)
  if min_length > time:
    raise ValueError(f"min_length must be <= time={time}, got {min_length}")
  return _adding(time, variable_length, min_length)


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _adding(time: int, variable_length: bool, min_length: int) -> Task:
  def draw(key: PRNGKeyArray, batch_size: int) -> Batch:
    u = jax.random.uniform(key, (time + 3, batch_size), jnp.float32)
    if variable_length:
      lengths = _uniform_int(u[time + 2], min_length, time + 1)
    else:
      lengths = jnp.full((batch_size,), time, jnp.int32)
    half = lengths // 2
    first = _uniform_int(u[time], 0, half)
    second = _uniform_int(u[time + 1], half, lengths)
    steps = jnp.arange(time, dtype=jnp.int32)[:, None]
    valid = steps < lengths[None, :]
    values = jnp.where(valid, u[:time], jnp.float32(0))
    marks = ((steps == first[None, :]) | (steps == second[None, :])).astype(jnp.float32)
    columns = jnp.arange(batch_size)
    targets = values[first, columns] + values[second, columns]
    xs = jnp.stack([values, marks], axis=-1)
    return Batch(xs=xs, targets=targets, lengths=lengths if variable_length else None)

  def loss(predictions: Array, batch: Batch) -> Array:
    _check_predictions("adding", predictions, (batch.targets.shape[0], 1))
    return jnp.mean(optax.losses.squared_error(predictions[:, 0], batch.targets))

  return Task(
    name="adding",
    time=time,
    input_size=2,
    output_size=1,
    readout="last",
    kind="regression",
    sample=_sampler(draw),
    loss=loss,
    baseline=1.0 / 6.0,
  )


# ---------------------------------------------------------------------------
# Copy memory
# ---------------------------------------------------------------------------


def copy_memory(delay: int, *, n_symbols: int = 8, copy_length: int = 10) -> Task:
  r"""The copy-memory task of Arjovsky, Shah & Bengio 2016 (after Hochreiter & Schmidhuber 1997).

  With ``D = delay``, ``K = copy_length`` and ``S = n_symbols``, each sequence has
  ``D + 2K`` steps, one symbol per step, fed one-hot over ``S + 2`` categories:

  ========================  ==============  ===================================
  steps                     input           target
  ========================  ==============  ===================================
  ``[0, K)``                ``K`` symbols   blank
                            uniform in
                            ``{1..S}``
  ``[K, K + D - 1)``        blank ``0``     blank
  ``K + D - 1``             delimiter       blank
                            ``S + 1``
  ``[K + D, D + 2K)``       blank ``0``     the ``K`` symbols, in order
  ========================  ==============  ===================================

  This is the paper's layout (its ``T`` is our ``D``): ``K`` symbols, ``T - 1``
  blanks, the delimiter, ``K`` more blanks; the model must output blanks until the
  delimiter has passed and then reproduce the symbols, ``D + K`` steps after it
  first saw them. The loss is the softmax cross-entropy over every step of every
  sequence (outputs over ``S + 1`` classes: blank and the symbols; the delimiter
  is never a target). Baseline: output blanks for ``D + K`` steps, then the uniform
  distribution over the ``S`` symbols, which scores

  .. math:: \frac{K \log S}{D + 2K} \quad (= 10 \log 8 / (T + 20) \text{ in the paper}).

  Args:
    delay: ``D``, the number of steps from the end of the symbols to the delimiter, >= 1.
    n_symbols: ``S``, the alphabet size, >= 2.
    copy_length: ``K``, the number of symbols to remember, >= 1.

  Returns:
    A :class:`Task` named ``"copy"``: input ``S + 2``, output ``S + 1`` (logits), readout
    ``"all"``, classification, targets ``(time, batch)`` int32; ``metric`` is the
    accuracy on the ``K`` copied symbols.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.copy_memory(5, n_symbols=4, copy_length=3)
    >>> batch = task.sample(jax.random.key(0), 2)
    >>> batch.xs.shape, batch.targets.shape
    ((11, 2, 6), (11, 2))
    >>> symbols = jnp.argmax(batch.xs, axis=-1)       # the input as integers
    >>> bool((batch.targets[-3:] == symbols[:3]).all())
    True
    >>> symbols[:, 0].tolist()[3:9]                  # blanks, then the delimiter
    [0, 0, 0, 0, 5, 0]
  """
  delay = _check_int("delay", delay, 1)
  n_symbols = _check_int("n_symbols", n_symbols, 2)
  copy_length = _check_int("copy_length", copy_length, 1)
  return _copy_memory(delay, n_symbols, copy_length)


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _copy_memory(delay: int, n_symbols: int, copy_length: int) -> Task:
  time = delay + 2 * copy_length
  blank, delimiter = 0, n_symbols + 1

  def draw(key: PRNGKeyArray, batch_size: int) -> Batch:
    symbols = _uniform_int(jax.random.uniform(key, (copy_length, batch_size)), 1, n_symbols + 1)
    blanks = jnp.full((delay - 1, batch_size), blank, jnp.int32)
    tail = jnp.full((copy_length, batch_size), blank, jnp.int32)
    marker = jnp.full((1, batch_size), delimiter, jnp.int32)
    inputs = jnp.concatenate([symbols, blanks, marker, tail], axis=0)
    lead = jnp.full((delay + copy_length, batch_size), blank, jnp.int32)
    targets = jnp.concatenate([lead, symbols], axis=0)
    xs = jax.nn.one_hot(inputs, n_symbols + 2, dtype=jnp.float32)
    return Batch(xs=xs, targets=targets, lengths=None)

  def loss(predictions: Array, batch: Batch) -> Array:
    _check_predictions("copy", predictions, (*batch.targets.shape, n_symbols + 1))
    return _cross_entropy(predictions, batch.targets)

  def metric(predictions: Array, batch: Batch) -> Array:
    return _accuracy(predictions[-copy_length:], batch.targets[-copy_length:])

  return Task(
    name="copy",
    time=time,
    input_size=n_symbols + 2,
    output_size=n_symbols + 1,
    readout="all",
    kind="classification",
    sample=_sampler(draw),
    loss=loss,
    baseline=copy_length * math.log(n_symbols) / time,
    metric=metric,
    metric_name="accuracy",
  )


# ---------------------------------------------------------------------------
# Handwritten digits, pixel by pixel
# ---------------------------------------------------------------------------


def digits(*, split: Literal["train", "test"] = "train") -> Task:
  r"""The 8×8 handwritten digits bundled with scikit-learn, read pixel by pixel.

  Each image of ``sklearn.datasets.load_digits`` (1797 images, 10 classes, 43 writers)
  becomes a sequence of 64 steps of one feature, the pixels in row-major (scanline)
  order scaled from ``0..16`` to ``[0, 1]``: a small, download-free relative of
  pixel-by-pixel MNIST (Le, Jaitly & Hinton 2015). The class is read from the output
  at the last step, so the model must carry what it saw in the first rows across up
  to 63 steps. Loss: softmax cross-entropy; baseline: the uniform prediction,
  :math:`\log 10 \approx 2.303`; metric: accuracy.

  The split is deterministic and stratified: within each class, taken in the data
  set's order, every fifth image (positions 4, 9, 14, ...) is a test image, the rest
  are training images (1442 and 355). ``sample`` draws images uniformly, with
  replacement, from the split; ``dataset()`` returns the whole split.

  Args:
    split: ``"train"`` or ``"test"``.

  Returns:
    A :class:`Task` named ``"digits"``: input 1, output 10 (logits), readout ``"last"``,
    classification, targets ``(batch,)`` int32.

  Raises:
    ImportError: scikit-learn is not installed (``pip install 'gatejax[test]'`` or
      ``'gatejax[notebooks]'``).

  Example:
    >>> import jax
    >>> from gatejax import tasks
    >>> task = tasks.digits(split="test")
    >>> batch = task.sample(jax.random.key(0), 8)
    >>> batch.xs.shape, batch.targets.dtype
    ((64, 8, 1), dtype('int32'))
    >>> task.dataset().xs.shape
    (64, 355, 1)
  """
  if split not in ("train", "test"):
    raise ValueError(f'split must be "train" or "test", got {split!r}')
  return _digits(split)


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError(
      "gatejax.tasks.digits needs scikit-learn, an optional dependency: "
      "pip install 'gatejax[test]' (or 'gatejax[notebooks]')"
    ) from e
  pixels, classes = load_digits(return_X_y=True)
  images = np.asarray(pixels, np.float32) / np.float32(16)
  labels = np.asarray(classes, np.int32)
  position = np.empty(len(labels), np.int64)
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    position[members] = np.arange(len(members))
  is_test = position % 5 == 4
  keep = is_test if split == "test" else ~is_test
  return images[keep], labels[keep]


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _digits(split: str) -> Task:
  images, labels = _load_digits(split)
  n = len(labels)

  def as_batch(pixels: Array, targets: Array) -> Batch:
    return Batch(xs=jnp.transpose(pixels)[..., None], targets=targets, lengths=None)

  def draw(key: PRNGKeyArray, batch_size: int) -> Batch:
    index = _uniform_int(jax.random.uniform(key, (batch_size,)), 0, n)
    return as_batch(jnp.asarray(images)[index], jnp.asarray(labels)[index])

  def dataset() -> Batch:
    return as_batch(jnp.asarray(images), jnp.asarray(labels))

  def loss(predictions: Array, batch: Batch) -> Array:
    _check_predictions("digits", predictions, (batch.targets.shape[0], 10))
    return _cross_entropy(predictions, batch.targets)

  def metric(predictions: Array, batch: Batch) -> Array:
    return _accuracy(predictions, batch.targets)

  return Task(
    name="digits",
    time=64,
    input_size=1,
    output_size=10,
    readout="last",
    kind="classification",
    sample=_sampler(draw),
    loss=loss,
    baseline=math.log(10),
    metric=metric,
    metric_name="accuracy",
    dataset=dataset,
  )
