"""Flip-flop: remember the last written bit across ignored instructions; read it on request."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _check_int, _check_probability, _one_hot, _Spec, _task

# One token per instruction, its bit in the same token.
_W0, _W1, _I0, _I1, _R = 0, 1, 2, 3, 4


def flip_flop(length: int = 64, p_ignore: float = 0.8) -> Task:
  r"""The flip-flop language FFL(``p_ignore``) of Liu et al. 2023, one instruction per step.

  Follows the definition of "Exposing attention glitches with flip-flop language
  modeling" (Liu, Ash, Goel, Krishnamurthy & Zhang 2023, §3; the ``synthseq/flipflop``
  data sets): a string of instructions *write*, *read* and *ignore*, the first always a
  write and the last always a read, the others drawn independently with probabilities
  ``((1 − p)/2, (1 − p)/2, p)`` for ``p = p_ignore``; writes and ignores carry a bit
  uniform in ``{0, 1}``; a read must return the bit of the last write. Liu et al. write
  each instruction and its bit as two tokens (``w 0 i 1 r 0``) and score the bit after
  each ``r``; here, as in SPEC §7, an instruction and its bit are one token, fed one-hot
  over five: ``w0 = 0``, ``w1 = 1``, ``i0 = 2``, ``i1 = 3``, ``r = 4`` (a read's bit is
  the answer, not part of the input). The model must output the bit at every read
  step, from the output of that step.

  Scored steps: the reads, ``Batch.mask`` ``(time, batch)`` True there (at least the last
  step of every sequence); ``targets`` the last written bit at reads, 0 elsewhere.
  ``loss`` and ``metric`` (per-read accuracy, pooled over all reads of the batch) read
  only those steps; :func:`~gatejax.tasks.sequence_accuracy` gives "all reads correct".

  Liu et al. train on FFL(0.8) and test on FFL(0.98) (sparse: long holds) and FFL(0.1)
  (dense): those are ``flip_flop(n, 0.98)`` and ``flip_flop(n, 0.1)``.
  ``sample(..., length=n)`` draws ``n`` instructions (``n >= 2``) with this task's
  ``p_ignore``. Memory, not state tracking: gates in ``(0, 1)`` suffice (Sarrof et al.
  2024), the positive control of the state-tracking experiment.

  Chance 1/2; baseline the uniform prediction at reads, :math:`\log 2`.

  Args:
    length: the number of instructions (steps) of a training sequence, >= 2.
    p_ignore: the probability of an ignore instruction in the middle of the string,
      in ``[0, 1]``.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"flip_flop"``: input 5, output 2 (logits),
    readout ``"all"``, classification, targets ``(time, batch)`` int32, with a mask.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> batch = tasks.flip_flop(12, p_ignore=0.5).sample(jax.random.key(3), 1)
    >>> tokens = jnp.argmax(batch.xs[:, 0], axis=-1)
    >>> tokens.tolist()                              # w0 w1 i0 i1 r = 0 1 2 3 4
    [1, 3, 2, 3, 4, 2, 0, 4, 0, 1, 3, 4]
    >>> jnp.where(batch.mask[:, 0], batch.targets[:, 0], -1).tolist()
    [-1, -1, -1, -1, 1, -1, -1, 0, -1, -1, -1, 1]
  """
  length = _check_int("length", length, 2)
  p_ignore = _check_probability("p_ignore", p_ignore)
  return _task(
    _FlipFlop(length, p_ignore),
    time=length,
    input_size=5,
    readout="all",
    baseline=math.log(2),
    chance=0.5,
  )


@dataclasses.dataclass(frozen=True)
class _FlipFlop(_Spec):
  length: int
  p_ignore: float

  name = "flip_flop"

  @property
  def output_size(self) -> int:
    return 2

  def check_length(self, length: int) -> None:
    if length < 2:
      raise ValueError(f"length must be >= 2 for flip_flop (a write, then a read), got {length}")

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.length if length is None else length
    # One (2 time, batch) draw: a three-dimensional one compiles several times slower.
    u = jax.random.uniform(key, (2 * time, batch_size))
    instruction, bit = u[:time], u[time:]
    p_write = (1.0 - self.p_ignore) / 2
    steps = jnp.arange(time, dtype=jnp.int32)[:, None]
    write = ((instruction < p_write) | (steps == 0)) & (steps < time - 1)
    middle_read = (instruction >= p_write) & (instruction < 2 * p_write) & (steps > 0)
    read = middle_read | (steps == time - 1)
    bits = (bit < 0.5).astype(jnp.int32)
    tokens = jnp.where(read, _R, jnp.where(write, _W0 + bits, _I0 + bits))
    # The step of the last write at or before each step; step 0 is always a write.
    last_write = jax.lax.cummax(jnp.where(write, steps, -1), axis=0)
    remembered = jnp.take_along_axis(bits, last_write, axis=0)
    targets = jnp.where(read, remembered, 0)
    return Batch(xs=_one_hot(tokens, 5), targets=targets, lengths=None, mask=read)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (flip_flop,)
