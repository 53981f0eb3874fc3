"""Parity: is the number of ones in a bit string odd? The smallest state-tracking task (Z2)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _check_int, _Spec, _task, _token_batch, _uniform_int


def parity(max_length: int = 40) -> Task:
  r"""Parity of a bit string (Deletang et al. 2023, ``ParityCheck``), read at its last bit.

  Follows ``ParityCheck.sample_batch`` of ``google-deepmind/neural_networks_chomsky_hierarchy``
  (``tasks/regular/parity_check.py``): bits uniform in ``{0, 1}``, fed one-hot (input 2,
  bit ``b`` is unit ``b``); the label is the number of ones mod 2. The label is read from
  the output at each sequence's last bit: Deletang's models read it from one extra empty
  step appended after the string, which a recurrent cell does not need (it has seen
  every bit at the last one), and which would make ``length`` count a step that is not
  part of the string.

  .. math:: y = \Big(\sum_{t < L} b_t\Big) \bmod 2

  Training lengths ``L`` are drawn per sequence, uniformly in ``[1, max_length]``
  (SPEC §7; Deletang draws one length per batch), right-padded with zero inputs to
  ``max_length`` steps (``Batch.lengths``). ``sample(key, batch_size, length=n)`` draws
  every sequence at exactly ``n`` bits, any ``n >= 1`` (no ``lengths``): the same task
  value trains at 1-40 and evaluates at 256.

  A linear recurrence with transition eigenvalues in ``[0, 1]`` cannot solve it at
  arbitrary length in finite precision; eigenvalues in ``[-1, 1]`` can (Grazzi et al.
  2025, Thm 1); nonlinear cells (RNN, GRU, LSTM) do.

  Chance 1/2; baseline the uniform prediction, :math:`\log 2`.

  Args:
    max_length: the longest training string, >= 1.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"parity"``: input 2, output 2 (logits), readout
    ``"last"``, classification, targets ``(batch,)`` int32, ``time = max_length``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.parity(8)
    >>> batch = task.sample(jax.random.key(0), 4)
    >>> batch.xs.shape, batch.lengths.shape
    ((8, 4, 2), (4,))
    >>> long = task.sample(jax.random.key(1), 4, length=100)
    >>> ones = jnp.sum(long.xs[..., 1], axis=0).astype(jnp.int32)
    >>> bool((ones % 2 == long.targets).all()), long.lengths
    (True, None)
  """
  max_length = _check_int("max_length", max_length, 1)
  return _task(
    _Parity(max_length),
    time=max_length,
    input_size=2,
    readout="last",
    baseline=math.log(2),
    chance=0.5,
  )


@dataclasses.dataclass(frozen=True)
class _Parity(_Spec):
  max_length: int

  name = "parity"

  @property
  def output_size(self) -> int:
    return 2

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.max_length if length is None else length
    u = jax.random.uniform(key, (time + 1, batch_size))
    bits = _uniform_int(u[:time], 0, 2)
    lengths = None if length is not None else _uniform_int(u[time], 1, time + 1)
    if lengths is not None:
      bits = jnp.where(jnp.arange(time)[:, None] < lengths[None, :], bits, 0)
    return _token_batch(bits, lengths, 2, targets=jnp.sum(bits, axis=0) % 2)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (parity,)
