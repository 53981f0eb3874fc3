"""The chunkwise runner: a cell's own whole-sequence form, for cells with a matrix-valued state.

A cell that offers ``chunkwise`` (:mod:`gatejax.protocol`; mLSTM, DeltaNet) evaluates its
sequence in chunks: matmuls within a chunk, its recurrence between chunks. This runner only
does what every such form shares: it reads the plan's ``chunk_size``, passes the valid-step
mask (a padded step must hold the carry, which the cell does through its own gates), reverses
time for ``reverse=True`` (the padding then comes first, where it holds the initial carry, so
each sequence is read from its last valid step back), and zeroes the outputs past each length.
Gradients are JAX's autodiff of the cell's form.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

import gatejax.run.loop as loop
from gatejax import protocol
from gatejax.run.options import Plan

__all__ = ["run"]

Params = Any
Carry = Any


def run(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[Carry, Array, Any]:
  """``(carry, ys, ())`` of ``cell.chunkwise``, as :func:`gatejax.scan` returns them.

  ``xs`` and ``lengths`` come prepared (:mod:`gatejax.run.prepare`).
  """
  steps = xs.shape[0]
  if steps == 0:
    x0 = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
    _, y = jax.eval_shape(lambda c, x: cell.step(params, c, x), carry, x0)
    return carry, jnp.zeros((0, *y.shape), y.dtype), ()
  valid = None if lengths is None else loop.valid_steps(steps, lengths)
  if plan.reverse:
    xs = xs[::-1]
    valid = None if valid is None else valid[::-1]
  final, ys = cell.chunkwise(params, xs, carry, valid, plan.chunk_size)
  if valid is not None:
    ys = loop.zero_past(valid, ys)
  if plan.reverse:
    ys = ys[::-1]
  if tuple(ys.shape) != (steps, *xs.shape[1:-1], cell.hidden_size):
    raise ValueError(
      f"{protocol.describe(cell)}.chunkwise must return ys of shape (time, *batch, hidden_size) "
      f"= {(steps, *xs.shape[1:-1], cell.hidden_size)}, got {tuple(ys.shape)}"
    )
  return final, ys, ()
