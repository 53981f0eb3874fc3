"""Cycle navigation: where a walk of stay / left / right moves ends on a cycle (counting mod m)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _check_int, _Spec, _task, _token_batch, _uniform_int


def cycle_navigation(max_length: int = 40, modulus: int = 5) -> Task:
  r"""The final position of a walk on a cycle of ``modulus`` positions (Deletang et al. 2023).

  Follows ``CycleNavigation.sample_batch`` of
  ``google-deepmind/neural_networks_chomsky_hierarchy``
  (``tasks/regular/cycle_navigation.py``): actions ``a_t`` uniform in ``{0, 1, 2}``, fed
  one-hot (input 3), move by ``a_t - 1``: token 0 steps left (−1), token 1 stays, token 2
  steps right (+1). The walk starts at position 0 and the label is where it ends,

  .. math:: y = \Big(\sum_{t < L} (a_t - 1)\Big) \bmod m,

  read from the output at the last action (Deletang reads it from an extra empty step;
  see :func:`parity`). Deletang's cycle has 5 positions; ``modulus`` generalises it.

  Training lengths per sequence uniform in ``[1, max_length]``, right-padded
  (``Batch.lengths``); ``sample(..., length=n)`` draws exactly ``n`` actions, any
  ``n >= 1``. Counting mod 5 needs complex transition eigenvalues in a linear
  recurrence, negative real ones are not enough (Grazzi et al. 2025, Thm 2).

  Chance ``1/modulus``; baseline :math:`\log m`.

  Args:
    max_length: the longest training walk, >= 1.
    modulus: the number of positions on the cycle, >= 2.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"cycle_navigation"``: input 3, output
    ``modulus`` (logits), readout ``"last"``, classification, targets ``(batch,)`` int32.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.cycle_navigation(10)
    >>> batch = task.sample(jax.random.key(0), 3, length=6)
    >>> actions = jnp.argmax(batch.xs, axis=-1)
    >>> bool(((jnp.sum(actions - 1, axis=0) % 5) == batch.targets).all())
    True
  """
  max_length = _check_int("max_length", max_length, 1)
  modulus = _check_int("modulus", modulus, 2)
  return _task(
    _CycleNavigation(max_length, modulus),
    time=max_length,
    input_size=3,
    readout="last",
    baseline=math.log(modulus),
    chance=1.0 / modulus,
  )


@dataclasses.dataclass(frozen=True)
class _CycleNavigation(_Spec):
  max_length: int
  modulus: int

  name = "cycle_navigation"

  @property
  def output_size(self) -> int:
    return self.modulus

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.max_length if length is None else length
    u = jax.random.uniform(key, (time + 1, batch_size))
    actions = _uniform_int(u[:time], 0, 3)
    lengths = None if length is not None else _uniform_int(u[time], 1, time + 1)
    moves = actions - 1
    if lengths is not None:
      moves = jnp.where(jnp.arange(time)[:, None] < lengths[None, :], moves, 0)
    targets = jnp.sum(moves, axis=0) % self.modulus
    return _token_batch(actions, lengths, 3, targets=targets)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (cycle_navigation,)
