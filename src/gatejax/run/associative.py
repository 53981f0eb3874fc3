r"""The associative runner: a cell affine in its carry, every step at once.

A cell that offers ``affine`` (:mod:`gatejax.protocol`) gives the coefficients of every step
in one call, :math:`c_t = a_t \cdot c_{t-1} + b_t`; :func:`gatejax.affine.solve` composes them
with ``jax.lax.associative_scan`` (:math:`O(\log T)` depth) and JAX differentiates that as
it is. Padding enters as the identity map (:func:`gatejax.affine.mask`), in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
from jaxtyping import Array

import gatejax.run.loop as loop
from gatejax import affine, protocol
from gatejax.run.options import Plan

__all__ = ["run"]

Params = Any
Carry = Any


def run(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[Carry, Array, Any]:
  r"""A cell affine in its carry, every step at once: :math:`c_t = a_t \cdot c_{t-1} + b_t`.

  The coefficients of every step come from ``cell.affine`` in one call; the carries are one
  :func:`gatejax.affine.solve` (``jax.lax.associative_scan``, :math:`O(\log T)` depth), a
  padded step the identity map (:func:`gatejax.affine.mask`). The outputs are read from the
  carries (``cell.read``, or the carry leaf that ``step`` returns as ``y``), else computed by
  ``step`` from each step's input carry, all steps at once. ``xs`` and ``lengths`` come
  prepared (:mod:`gatejax.run.prepare`).
  """
  affine_fn = cast(Callable[..., Any], protocol.affine_of(cell))  # the plan checked it
  reverse, with_gates = plan.reverse, plan.with_gates
  steps = xs.shape[0]
  parts = protocol.recurrence(cell)
  if steps == 0:
    x0 = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
    _, y, g = jax.eval_shape(
      lambda c, x: parts.recur(params, c, parts.project(params, x)), carry, x0
    )
    empty = lambda a: jnp.zeros((0, *a.shape), a.dtype)
    return carry, empty(y), jax.tree.map(empty, g) if with_gates else ()
  valid = None if lengths is None else loop.valid_steps(steps, lengths)
  aff = affine.check(affine_fn(params, xs), carry, steps, f"{protocol.describe(cell)}.affine")
  carries = affine.solve(affine.mask(aff, valid), carry, reverse=reverse)
  final = jax.tree.map(lambda c: c[0] if reverse else c[-1], carries)
  first = jax.tree.map(lambda c: c[None], carry)
  if reverse:
    before = jax.tree.map(lambda cs, c0: jnp.concatenate([cs[1:], c0]), carries, first)
  else:
    before = jax.tree.map(lambda cs, c0: jnp.concatenate([c0, cs[:-1]]), carries, first)
  read = protocol.reader(cell, params, carry, xs[0])
  gates: Any = ()
  if read is not None and not with_gates:
    ys = jax.vmap(read, (None, 0, 0))(params, carries, xs)
  else:
    # Every step's input carry is known now: the steps themselves, all at once.
    _, ys, gates = jax.vmap(parts.recur, (None, 0, 0))(params, before, parts.project(params, xs))
  if valid is not None:
    ys = loop.zero_past(valid, ys)
  return final, ys, gates if with_gates else ()
