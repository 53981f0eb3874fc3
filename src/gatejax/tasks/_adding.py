"""The adding problem: two marked values to remember and sum."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from gatejax.tasks._base import (
  Batch,
  Task,
  _check_int,
  _check_predictions,
  _Spec,
  _task,
  _uniform_int,
)


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
  :math:`2 / 12 = 1/6 \approx 0.167`, at every length. A regression: no metric, no
  ``chance``.

  ``sample(key, batch_size, length=n)`` draws every sequence at exactly ``n`` steps
  (``n >= 2``, no ``lengths``), also for a ``variable_length`` task; at ``n = time``
  it gives what a fixed-length task of ``time`` steps draws from the same key.

  Args:
    time: the sequence length ``T`` (the padded length with ``variable_length``), >= 2.
    variable_length: draw each sequence's length uniformly from ``[min_length, T]``;
      steps past it are zero in both features and both marks lie inside it.
    min_length: the shortest length with ``variable_length`` (default ``max(2, T // 2)``).

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"adding"``: input 2 (value, mark), output 1,
    readout ``"last"``, regression; targets ``(batch,)`` float32.

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
  spec = _Adding(time, variable_length, min_length)
  return _task(
    spec,
    time=time,
    input_size=2,
    readout="last",
    baseline=1.0 / 6.0,
    chance=None,
    kind="regression",
    metric=False,
  )


@dataclasses.dataclass(frozen=True)
class _Adding(_Spec):
  time: int
  variable_length: bool
  min_length: int

  name = "adding"

  @property
  def output_size(self) -> int:
    return 1

  def check_length(self, length: int) -> None:
    if length < 2:
      raise ValueError(f"length must be >= 2 for the adding problem (two marks), got {length}")

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.time if length is None else length
    variable = self.variable_length and length is None
    u = jax.random.uniform(key, (time + 3, batch_size), jnp.float32)
    if variable:
      lengths = _uniform_int(u[time + 2], self.min_length, time + 1)
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
    return Batch(xs=xs, targets=targets, lengths=lengths if variable else None)

  def loss(self, predictions: Array, batch: Batch) -> Array:
    _check_predictions("adding", predictions, (batch.targets.shape[0], 1))
    return jnp.mean(optax.losses.squared_error(predictions[:, 0], batch.targets))


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (adding,)
