"""The one preparation of a call: every runner's arguments checked, completed and cleaned here.

:func:`prepare` runs before a runner is compiled (at trace time, in Python): it checks the
cell, the inputs, the parameters, the carry and the lengths against what the cell itself
produces (``gatejax._validate``), fills in the default carry in the dtype the step
computes in, and turns the lengths into int32. :func:`clean` runs first thing inside every
compiled runner: it replaces each padded input (``t >= lengths``) by zeros, so that what the
padding holds (NaN included) reaches no output and no gradient (see :mod:`gatejax.run.loop`).

:func:`gatejax.scan` and its fast paths, the stacks, every function of
:mod:`gatejax.analysis`, :func:`gatejax.parallel_scan` and :mod:`gatejax.dynamics` use
these two and nothing else to read their arguments.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array

import gatejax.run.loop as loop
from gatejax import _validate

__all__ = ["Call", "clean", "prepare"]


class Call(NamedTuple):
  """A call's arguments, checked and completed by :func:`prepare`.

  Attributes:
    xs: ``(time, *batch, input)``, floating point (padding not yet cleaned: :func:`clean`).
    carry: the initial carry, the cell's default where none was given.
    lengths: int32 of shape ``batch``, or ``None`` (every sequence full length).
    batch_shape: the batch axes of ``xs``.
    dtype: the dtype the step computes in (the result type of ``xs`` and the parameters).
  """

  xs: Array
  carry: Any
  lengths: Array | None
  batch_shape: tuple[int, ...]
  dtype: Any


def prepare(
  cell: Any, params: Any, xs: Any, carry: Any = None, lengths: Any = None, *, unroll: Any = 1
) -> Call:
  """Check every argument of a call at trace time and fill in the default carry.

  The expected parameters, carry and step results are derived from the cell itself, so any
  cell is checked as a built-in one.

  Raises:
    TypeError: a wrong type or dtype (``xs`` not floating, ``lengths`` not integer, a carry
      or params of another structure, a step that disagrees with its own initial carry).
    ValueError: a wrong shape, length or option; the message names the argument.
  """
  _validate.cell(cell)
  xs = _validate.sequence(xs)
  _validate.params(cell, params, input_size=xs.shape[-1])
  _validate.unroll(unroll)
  batch_shape = tuple(xs.shape[1:-1])
  dtype = jnp.result_type(xs, *jax.tree.leaves(params))
  if carry is None:
    carry = cell.initial_carry(batch_shape, dtype)
  else:
    _validate.carry(cell, carry, batch_shape, dtype)
  _validate.step(cell, params, carry, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype), batch_shape)
  if lengths is not None:
    lengths = _validate.lengths(lengths, batch_shape, xs.shape[0])
    if lengths.dtype != jnp.int32:
      lengths = lengths.astype(jnp.int32)
  return Call(xs=xs, carry=carry, lengths=lengths, batch_shape=batch_shape, dtype=dtype)


def clean(xs: Array, lengths: Array | None) -> Array:
  """``xs`` with every padded step (``t >= lengths``) replaced by zeros: the first thing a
  compiled runner does with its inputs (a no-op without lengths)."""
  return loop.clean_inputs(xs, lengths)
