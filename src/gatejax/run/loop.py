"""The one masked loop over time, shared by every runner, sweep and experiment.

Sequences are right-padded: step ``t`` of sequence ``b`` is valid when ``t < lengths[b]``.
A padded step leaves the carry unchanged and outputs zeros. Two rules make that exact
under differentiation too:

* the carry and output are selected with ``jnp.where``, so the backward pass sends a zero
  cotangent into a padded step;
* a padded input never enters the computation: :func:`clean_inputs` replaces it by zeros
  *before* the step reads it. Otherwise a NaN or infinity in the padding would meet that
  zero cotangent in the step's derivative, and ``0 · NaN = NaN`` would poison every
  gradient although the forward pass ignored it.

Indices are int32 whatever the x64 mode (lengths lie in ``[0, time]``), so comparisons
pass strict dtype promotion with int32 and int64 lengths alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["clean_inputs", "hold", "int32", "scan", "time", "valid_steps", "zero_past"]

Carry = Any


def time(steps: int) -> Array:
  """Step indices ``0 .. steps-1``, int32."""
  return jnp.arange(steps, dtype=jnp.int32)


def int32(lengths: Array | None) -> Array | None:
  """``lengths`` as int32, or ``None``."""
  return None if lengths is None else jnp.asarray(lengths).astype(jnp.int32)


def _expand(valid: Array, leaf: Array) -> Array:
  """``valid`` (shape ``batch``) reshaped to broadcast against ``leaf`` (``(*batch, ...)``)."""
  return jnp.reshape(valid, valid.shape + (1,) * (jnp.ndim(leaf) - valid.ndim))


def hold(valid: Array, new: Any, old: Any) -> Any:
  """``new`` where ``valid`` (shape ``batch``), else ``old``, leaf by leaf (any trailing axes)."""
  return jax.tree.map(lambda n, o: jnp.where(_expand(valid, n), n, o), new, old)


def zero_past(valid: Array, y: Any) -> Any:
  """``y`` where ``valid``, else zeros, leaf by leaf."""
  return jax.tree.map(lambda a: jnp.where(_expand(valid, a), a, jnp.zeros_like(a)), y)


def valid_steps(steps: int, lengths: Array) -> Array:
  """``(time, *batch)`` booleans, ``t < lengths``."""
  t = time(steps).reshape((steps,) + (1,) * jnp.ndim(lengths))
  return t < jnp.asarray(lengths).astype(jnp.int32)[None]


def clean_inputs(xs: Array, lengths: Array | None) -> Array:
  """``xs`` with every padded step (``t >= lengths``) replaced by zeros.

  The forward pass never uses a padded input; this keeps it out of the derivatives too
  (see the module docstring). The gradient with respect to a padded input is zero.
  """
  if lengths is None:
    return xs
  return zero_past(valid_steps(xs.shape[0], lengths), xs)


def scan(
  fn: Callable[[Carry, Any], tuple[Carry, Any, Any]],
  carry: Carry,
  inputs: Any,
  *,
  time: Array,
  lengths: Array | None,
  reverse: bool = False,
  unroll: int | bool = 1,
) -> tuple[Carry, tuple[Any, Any]]:
  """The masked recurrence: ``fn(carry, input_t) -> (carry, y_t, extra_t)`` over time.

  Past each sequence's length the carry is held and ``y`` is zero; ``extra`` (residuals,
  gates, the carry the step read) is stacked as ``fn`` returns it. ``time`` holds the
  step indices of ``inputs`` (a block of a longer sequence has its own).

  Returns:
    ``(carry, (ys, extras))`` as ``jax.lax.scan`` stacks them.
  """

  def body(c: Carry, args: tuple[Array, Any]) -> tuple[Carry, tuple[Any, Any]]:
    t, x = args
    new, y, extra = fn(c, x)
    if lengths is not None:
      valid = t < lengths
      new, y = hold(valid, new, c), zero_past(valid, y)
    return new, (y, extra)

  return jax.lax.scan(body, carry, (time, inputs), reverse=reverse, unroll=unroll)


def masked_step(
  fn: Callable[[Carry, Any], tuple[Carry, Any]], lengths: Array | None
) -> Callable[[Carry, Any, Array], tuple[Carry, Any]]:
  """``(carry, input, t) -> (carry, y)``: ``fn`` holding the carry and zeroing ``y`` past each length.

  The step of :func:`scan` on its own, for sweeps that differentiate one step at a time.
  """

  def step(c: Carry, x: Any, t: Array) -> tuple[Carry, Any]:
    new, y = fn(c, x)
    if lengths is None:
      return new, y
    valid = t < lengths
    return hold(valid, new, c), zero_past(valid, y)

  return step
