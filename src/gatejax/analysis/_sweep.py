"""The forward sweep every analysis shares: the sequence as :func:`gatejax.scan` runs it, with
every step's input carry kept (private to :mod:`gatejax.analysis`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxtyping import Array

import gatejax.run.loop as loop
import gatejax.run.prepare as prepare
from gatejax import _validate
from gatejax.protocol import Recurrence
from gatejax.run.options import ScanOptions, plan, resolve_options

Params = Any
Carry = Any


def prepared(
  cell: Any, params: Params, xs: Any, carry: Any, lengths: Any, options: Any, who: str
) -> tuple[Array, Carry, Array | None, ScanOptions]:
  """``(xs, carry, lengths, options)`` of one analysis call, checked as :func:`gatejax.scan`
  checks them: the arguments (:func:`gatejax.run.prepare.prepare`), the options with the
  same errors (``impl="associative"`` for a cell not affine in its carry is refused, not
  silently replaced by the loop), and a carry the sweeps can differentiate."""
  options = resolve_options(options)
  call = prepare.prepare(cell, params, xs, carry, lengths, unroll=options.unroll)
  plan(options, cell, call.xs.shape[0], reverse=False, with_gates=False)
  _validate.float_carry(call.carry, who)
  return call.xs, call.carry, call.lengths, options


def step_fn(parts: Recurrence, params: Params) -> Callable[[Carry, Array], tuple[Carry, Array]]:
  """The cell's step, ``recur ∘ project`` (in the run's matmul precision), without gates."""

  def step(c: Carry, x: Array) -> tuple[Carry, Array]:
    new, y, _ = parts.recur(params, c, parts.project(params, x))
    return new, y

  return step


def forward(
  parts: Recurrence,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  unroll: int | bool = 1,
) -> tuple[Carry, Carry, Array]:
  """Run the sequence as :func:`gatejax.scan`; also return every step's input carry ``c_t``.

  The masked loop of :mod:`gatejax.run.loop`, over the cell's own recurrence.
  """

  def fn(c: Carry, px: Array) -> tuple[Carry, Array, Carry]:
    new, y, _ = parts.recur(params, c, px)
    return new, y, c

  time = loop.time(xs.shape[0])
  final, (ys, before) = loop.scan(
    fn, carry, parts.project(params, xs), time=time, lengths=lengths, unroll=unroll
  )
  return final, before, ys
