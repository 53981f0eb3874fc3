"""Modular arithmetic: reduce ``a ∘ b ∘ c …`` mod m, strictly from left to right."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _check_int, _Spec, _task, _token_batch, _uniform_int

# Deletang's OP_BY_CHARACTER: token modulus + k is operator k. The blank "_" is part of the
# alphabet (input size modulus + 4) but never drawn.
_PLUS, _MINUS, _TIMES, _BLANK = 0, 1, 2, 3


def modular_arithmetic(max_length: int = 40, modulus: int = 5) -> Task:
  r"""An expression ``a ∘ b ∘ c …`` mod ``modulus``, evaluated strictly left to right.

  The token layout follows ``ModularArithmetic.sample_batch`` of
  ``google-deepmind/neural_networks_chomsky_hierarchy``
  (``tasks/regular/modular_arithmetic.py``): odd-length strings, numbers at the even
  steps, uniform in ``{0, …, m − 1}`` (token ``n``), operators at the odd steps,
  uniform in ``{+, −, ·}`` (tokens ``m``, ``m + 1``, ``m + 2``; token ``m + 3``, Deletang's
  blank, is in the alphabet but never drawn), fed one-hot (input ``m + 4``). The
  label differs from Deletang's on purpose (SPEC §7): the expression is reduced strictly
  from left to right,

  .. math:: y = ((a_0 \circ_1 a_1) \circ_2 a_2) \circ_3 \cdots \bmod m,

  so that the answer is a finite-state computation over the tokens as they come
  (Deletang gives ``·`` precedence over ``+`` and ``−``). The label is read from the
  output at the last number (Deletang reads it from an extra empty step; see
  :func:`parity`).

  Lengths are odd: training lengths per sequence uniform in ``{1, 3, 5, …}`` up to
  ``max_length`` (``time`` is the largest odd number ``<= max_length``), right-padded
  (``Batch.lengths``); ``sample(..., length=n)`` draws exactly ``n`` tokens, ``n`` odd
  (an even ``n`` is a ``ValueError``).

  Labels are not uniform over the residues (a product with 0 is 0), so a constant
  guess of 0 beats ``chance``; ``chance`` is ``1/modulus``, uniform guessing, as in
  Grazzi et al. 2025 (Table 3) and SPEC §7. Baseline the uniform prediction,
  :math:`\log m`.

  Args:
    max_length: the longest training expression, >= 1 (an even value allows lengths up
      to ``max_length - 1``).
    modulus: the modulus, >= 2.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"modular_arithmetic"``: input ``modulus + 4``,
    output ``modulus`` (logits), readout ``"last"``, classification, targets ``(batch,)``
    int32.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.modular_arithmetic(40)
    >>> task.time
    39
    >>> batch = task.sample(jax.random.key(0), 2, length=5)
    >>> jnp.argmax(batch.xs, axis=-1).T.tolist()  # 5 is "+", 6 "-", 7 "·"
    [[4, 5, 1, 7, 2], [4, 7, 2, 5, 0]]
    >>> batch.targets.tolist()  # (4 + 1) · 2 = 0 and (4 · 2) + 0 = 3, mod 5
    [0, 3]
  """
  max_length = _check_int("max_length", max_length, 1)
  modulus = _check_int("modulus", modulus, 2)
  time = max_length if max_length % 2 == 1 else max_length - 1
  return _task(
    _ModularArithmetic(time, modulus),
    time=time,
    input_size=modulus + 4,
    readout="last",
    baseline=math.log(modulus),
    chance=1.0 / modulus,
  )


def _apply(operator: Array, value: Array, operand: Array, modulus: int) -> Array:
  out = jnp.where(operator == _PLUS, value + operand, value - operand)
  return jnp.where(operator == _TIMES, value * operand, out) % modulus


@dataclasses.dataclass(frozen=True)
class _ModularArithmetic(_Spec):
  time: int  # odd
  modulus: int

  name = "modular_arithmetic"

  @property
  def output_size(self) -> int:
    return self.modulus

  def check_length(self, length: int) -> None:
    if length % 2 == 0:
      raise ValueError(
        f"length must be odd for modular_arithmetic (numbers and operators alternate), got {length}"
      )

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.time if length is None else length
    terms = (time + 1) // 2
    u = jax.random.uniform(key, (time + 1, batch_size))
    numbers = _uniform_int(u[:terms], 0, self.modulus)
    operators = _uniform_int(u[terms:time], 0, 3)  # +, -, · (never the blank)
    lengths = None if length is not None else 2 * _uniform_int(u[time], 0, terms) + 1
    tokens = jnp.zeros((time, batch_size), jnp.int32)
    tokens = tokens.at[0::2].set(numbers).at[1::2].set(self.modulus + operators)

    def step(value: Array, term: tuple[Array, Array, Array]) -> tuple[Array, None]:
      index, operator, operand = term
      updated = _apply(operator, value, operand, self.modulus)
      if lengths is None:
        return updated, None
      # Term ``index`` (1-based) is inside a sequence of 2k + 1 tokens when index <= k.
      return jnp.where(2 * index < lengths, updated, value), None

    indices = jnp.arange(1, terms, dtype=jnp.int32)
    targets, _ = jax.lax.scan(step, numbers[0], (indices, operators, numbers[1:]))
    return _token_batch(tokens, lengths, self.modulus + 4, targets=targets)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (modular_arithmetic,)
