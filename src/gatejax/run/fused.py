r"""The sequence runner's fast path: a hand-written VJP of the whole recurrence.

Reverse-mode autodiff of ``jax.lax.scan`` differentiates the loop body and accumulates
each loop-invariant's cotangent inside the reverse loop: every step adds an outer
product :math:`h_{t-1}^\top \delta_t` (a matmul with only ``batch`` rows) into a
``(hidden, G·hidden)`` accumulator. :func:`run` instead gives the sequence one
``jax.custom_vjp``:

* forward: the same scan as the plain path, saving per step the carry it read and
  the recurrent matmul's output ``hh`` (the gate activations are recomputed from them
  in the backward sweep, cheaply, by the cell's own elementwise code);
* backward: a reverse scan that runs only the adjoint recurrence,

  .. math::

    (\delta c_{t-1}, \delta px_t, \delta hh_t) = \mathrm{combine}^*(\delta c_t, \delta y_t),
    \qquad \delta h_{t-1} \mathrel{+}= \delta hh_t\, W_h^\top,

  stacking :math:`\delta px_t` and :math:`\delta hh_t` over the steps of a block;
* then the weight gradients of the block as a few matmuls over all its ``steps · batch``
  rows, :math:`\partial W_h = \sum_t h_{t-1}^\top \delta hh_t` and
  :math:`\partial W_x = \sum_t x_t^\top \delta px_t`, obtained as ``jax.vjp`` of the
  cell's own ``mix`` and ``project`` with time taken as one more batch axis. With one
  block of the whole sequence (the default off the CPU) these are single large matmuls.

Every derivative comes from ``jax.vjp`` of the cell's own functions
(:class:`~gatejax.protocol.RecurSplit`), so any ``gate_fn`` or ``activation`` works and
there is one source of truth. A cell without a split (GRU ``reset="before"``, whose
candidate matmul reads ``r``) takes a generic form of the same scheme: the reverse scan
pulls back through ``cell.recur`` with the parameters held fixed (recomputing the step),
and the parameter gradient is one ``jax.vjp`` of ``recur`` over all steps at once.

``remat=S`` bounds the activation memory: the forward pass keeps only the carry at the
start of each segment of ``S`` steps, and the backward pass recomputes one segment's
residuals at a time (memory :math:`O(T/S + S)` carries instead of :math:`O(T)`).

``matmul_dtype=jnp.bfloat16`` runs the input projection and the recurrent matmul, and
their transposes in the backward pass, with bfloat16 operands and float32 results
(accumulation); the carry, the gates, the biases and every elementwise operation stay
in the compute dtype.

Time runs in blocks (``Plan.block``, :mod:`gatejax.run.options`): one step per block on a CPU, where what stays in
cache decides the speed (a measured choice, see BENCHMARKS.md), one block of the whole
sequence elsewhere (the largest matmuls). Each block projects its inputs with one matmul;
the backward pass recomputes that projection rather than saving it.

Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) is not defined for a
``custom_vjp``: :func:`gatejax.scan` then runs :func:`run_autodiff` under ``impl="auto"``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core
from jaxtyping import Array

import gatejax.run.loop as loop
from gatejax import protocol
from gatejax.protocol import Recurrence, RecurSplit
from gatejax.run.options import Plan

__all__ = ["recurrence", "run", "run_autodiff"]

Params = Any
Carry = Any


# ---------------------------------------------------------------------------
# The cell's functions, in the precision the run asks for
# ---------------------------------------------------------------------------


def _low_precision(fn: Callable[[Params, Array], Array], dtype: str) -> Callable:
  """``fn(params, a)`` with every matmul's operands rounded to ``dtype``.

  ``fn`` is traced in its own precision and replayed with each ``dot_general`` given
  ``dtype`` operands and a result (accumulation) in the original type; everything else
  (bias additions included) runs as written. So the cell's own ``project`` and ``mix``
  stay the one source of truth, and XLA gets bfloat16 dots with float32 results, the form
  it runs on the CPU's bfloat16 units (rounding the result to bfloat16 instead would
  make XLA:CPU upcast the whole dot to float32).
  """

  def wrapped(params: Params, a: Array) -> Array:
    closed = jax.make_jaxpr(fn)(params, a)
    (out,) = _replay(closed.jaxpr, closed.consts, jax.tree.leaves((params, a)), dtype)
    return out

  return wrapped


def _replay(jaxpr: Any, consts: list[Any], args: list[Any], dtype: str) -> list[Any]:
  """Evaluate ``jaxpr`` with low-precision matmul operands (see :func:`_low_precision`)."""
  env: dict[Any, Any] = {}

  def read(v: Any) -> Any:
    return v.val if isinstance(v, jax_core.Literal) else env[v]

  for var, value in zip(jaxpr.constvars, consts, strict=True):
    env[var] = value
  for var, value in zip(jaxpr.invars, args, strict=True):
    env[var] = value
  for eqn in jaxpr.eqns:
    ins = [read(v) for v in eqn.invars]
    name = eqn.primitive.name
    if name == "dot_general" and _is_matmul(eqn.params["dimension_numbers"], *ins):
      outs = [_matmul(ins[0], ins[1], dtype)]
    elif name == "dot_general":
      result = eqn.outvars[0].aval.dtype
      lhs, rhs = (x.astype(dtype) for x in ins)
      params = dict(eqn.params, preferred_element_type=result)
      outs = [eqn.primitive.bind(lhs, rhs, **params)]
    elif name in ("pjit", "jit", "closed_call"):
      inner = eqn.params.get("jaxpr") or eqn.params["call_jaxpr"]
      outs = _replay(inner.jaxpr, inner.consts, ins, dtype)
    else:
      outs = eqn.primitive.bind(*ins, **eqn.params)
      outs = outs if eqn.primitive.multiple_results else [outs]
    for var, value in zip(eqn.outvars, outs, strict=True):
      env[var] = value
  return [read(v) for v in jaxpr.outvars]


def _is_matmul(dimension_numbers: Any, lhs: Array, rhs: Array) -> bool:
  """``lhs @ rhs`` with ``rhs`` a matrix: what the cells' ``x @ w`` traces to."""
  (contract_l, contract_r), (batch_l, batch_r) = dimension_numbers
  return (
    rhs.ndim == 2
    and tuple(contract_l) == (lhs.ndim - 1,)
    and tuple(contract_r) == (0,)
    and not batch_l
    and not batch_r
  )


def _lowp_dot(
  a: Array, b: Array, contract: tuple[tuple[int, ...], tuple[int, ...]], dtype: str, out: Any
) -> Array:
  return jax.lax.dot_general(
    a.astype(dtype), b.astype(dtype), (contract, ((), ())), preferred_element_type=out
  )


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(x: Array, w: Array, dtype: str) -> Array:
  """``x @ w`` with ``dtype`` operands and a result in ``x``'s type; its VJP's matmuls alike.

  JAX's own transpose of such a dot would give low-precision *results* to the backward
  matmuls, which XLA:CPU then runs in float32; this keeps them on the bfloat16 units.
  """
  return _lowp_dot(x, w, ((x.ndim - 1,), (0,)), dtype, x.dtype)


def _matmul_fwd(x: Array, w: Array, dtype: str) -> tuple[Array, tuple[Array, Array]]:
  return _matmul(x, w, dtype), (x, w)


def _matmul_bwd(dtype: str, saved: tuple[Array, Array], ct: Array) -> tuple[Array, Array]:
  x, w = saved
  dx = _lowp_dot(ct, w, ((ct.ndim - 1,), (1,)), dtype, x.dtype)
  leading = tuple(range(x.ndim - 1))
  dw = _lowp_dot(x, ct, (leading, leading), dtype, w.dtype)
  return dx, dw


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def recurrence(cell: Any, matmul_dtype: str | None) -> Recurrence:
  """The cell's recurrence (:func:`gatejax.protocol.recurrence`), its matmuls in ``matmul_dtype``."""
  parts = protocol.recurrence(cell)
  if matmul_dtype is None:
    return parts
  if parts.split is None:
    raise ValueError(
      "matmul_dtype needs a cell whose recurrence has one recurrent matmul (cell.split); "
      f"{protocol.describe(cell)} has none"
    )
  split = parts.split._replace(mix=_low_precision(parts.split.mix, matmul_dtype))
  return Recurrence(_low_precision(parts.project, matmul_dtype), split.recur, split)


# ---------------------------------------------------------------------------
# Time in blocks
# ---------------------------------------------------------------------------
#
# Time is cut into blocks of ``plan.block`` steps. A block projects its inputs at once
# (one matmul of block·batch rows) and runs its steps as an unrolled loop; in the
# backward pass it turns its stacked cotangents into weight gradients with one matmul of
# block·batch rows. On a CPU a small block keeps every per-block array in cache: there
# the (time, batch, G·hidden) arrays of the whole-sequence form cost more in memory
# traffic than their large matmuls save (see BENCHMARKS.md). A GPU prefers one block.


def _zeros_like(tree: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, tree)


def _add(a: Any, b: Any) -> Any:
  """Cotangents added leaf by leaf; an integer leaf's (``float0``: no derivative) stays."""
  return jax.tree.map(lambda u, v: u if u.dtype == jax.dtypes.float0 else u + v, a, b)


def _blocks(a: Any, size: int) -> Any:
  """Leading axis ``n·size`` -> ``(n, size)``."""
  return jax.tree.map(lambda x: x.reshape((x.shape[0] // size, size, *x.shape[1:])), a)


def _unblock(a: Any) -> Any:
  return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1], *x.shape[2:])), a)


def _inner_unroll(plan: Plan) -> int | bool:
  # A short block of a longer sequence runs unrolled: a nested loop's per-iteration cost
  # is what blocks avoid. A single block is the plain loop, unrolled as asked.
  return True if plan.block <= 16 and not plan.single_block else plan.unroll


def _outer_unroll(plan: Plan) -> int | bool:
  # With one step per block the loop over blocks is the loop over steps.
  return plan.unroll if plan.block == 1 and not plan.single_block else 1


def _block_forward(
  parts: Recurrence,
  plan: Plan,
  params: Params,
  carry: Carry,
  xs: Array,
  time: Array,
  lengths: Array | None,
  *,
  save: bool,
) -> tuple[Carry, Array, Any, Any]:
  """Run one block; with ``save``, also its residuals ``(input carries, pxs, hhs)``."""
  pxs = parts.project(params, xs)
  split = parts.split

  def step(c: Carry, px: Array) -> tuple[Carry, Array, Any]:
    hh = ()
    if save and split is not None:
      hh = split.mix(params, split.hidden(c))
      new, y, gates = split.combine(c, px, hh)
    else:
      new, y, gates = parts.recur(params, c, px)
    return new, y, (gates if plan.with_gates else (), c if save else (), hh)

  carry, (ys, (gates, before, hhs)) = loop.scan(
    step,
    carry,
    pxs,
    time=time,
    lengths=lengths,
    reverse=plan.reverse,
    unroll=_inner_unroll(plan),
  )
  return carry, ys, gates, (before, pxs, hhs) if save else ()


def _mix_carry(split: RecurSplit, params: Params, carry: Carry) -> Array:
  return split.mix(params, split.hidden(carry))


def _block_backward(
  parts: Recurrence,
  plan: Plan,
  params: Params,
  xs: Array,
  time: Array,
  lengths: Array | None,
  residuals: Any,
  d_carry: Carry,
  d_ys: Array,
  d_gates: Any,
) -> tuple[Carry, Params, Array]:
  """Pull ``(d_carry, d_ys, d_gates)`` back through one block: ``(d_carry0, d_params, d_xs)``."""
  before, pxs, hhs = residuals
  split = parts.split

  def outputs(fn: Callable) -> Callable:
    # The gates' cotangent only exists when the run returns them.
    return fn if plan.with_gates else (lambda *a: fn(*a)[:2])

  # For cells whose combine reads px + hh, the pulled-back dpx and dhh are one array:
  # stacking it once halves the writes (found while tracing the body, which runs once).
  shared = []

  def body(dc: Carry, inputs: Any) -> tuple[Carry, Any]:
    t, c, px, hh, dy, dg = inputs
    held = None
    if lengths is not None:
      # A padded step passed its input carry through unchanged and wrote a zero output.
      valid = t < lengths
      zeros = _zeros_like(dc)
      dy = loop.zero_past(valid, dy)
      dc, held = loop.hold(valid, dc, zeros), loop.hold(valid, zeros, dc)
    cts = (dc, dy, dg) if plan.with_gates else (dc, dy)
    if split is not None:
      _, pull = jax.vjp(outputs(split.combine), c, px, hh)
      dc_prev, dpx, dhh = pull(cts)
      _, pull_mix = jax.vjp(partial(_mix_carry, split, params), c)
      (dc_mix,) = pull_mix(dhh)
      dc_prev, per_step = _add(dc_prev, dc_mix), dhh
      if dpx is dhh:
        shared.append(True)
        dpx = ()
    else:
      _, pull = jax.vjp(outputs(lambda c, px: parts.recur(params, c, px)), c, px)
      dc_prev, dpx = pull(cts)
      per_step = cts
    if held is not None:
      dc_prev = _add(dc_prev, held)
    return dc_prev, (dpx, per_step)

  inputs = (time, before, pxs, hhs, d_ys, d_gates)
  d_carry0, (dpxs, per_step) = jax.lax.scan(
    body, d_carry, inputs, reverse=not plan.reverse, unroll=_inner_unroll(plan)
  )
  if shared:
    dpxs = per_step
  # Weight gradients of the whole block at once: time is one more batch axis of the
  # cell's own functions, so each transposed matmul has block·batch rows.
  _, pull_project = jax.vjp(parts.project, params, xs)
  d_params, d_xs = pull_project(dpxs)
  if split is not None:
    hs, mix = split.hidden(before), split.mix
    _, pull_mix = jax.vjp(lambda p: mix(p, hs), params)
  else:
    _, pull_mix = jax.vjp(lambda p: outputs(parts.recur)(p, before, pxs), params)
  (d_params_rec,) = pull_mix(per_step)
  return d_carry0, _add(d_params, d_params_rec), d_xs


def _span_forward(
  parts: Recurrence,
  plan: Plan,
  params: Params,
  carry: Carry,
  xs: Array,
  time: Array,
  lengths: Array | None,
  *,
  save: bool,
) -> tuple[Carry, Array, Any, Any]:
  """Run a whole number of blocks; with ``save``, keep what the backward pass reads."""

  def block(c: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Any]:
    t, x = inputs
    c_end, ys, gates, residuals = _block_forward(parts, plan, params, c, x, t, lengths, save=save)
    if save:
      # The projection is recomputed per block in the backward pass: one cache-sized
      # matmul costs less than writing and reading back (block, batch, G·hidden).
      before, _, hhs = residuals
      return c_end, (ys, gates, (before, hhs))
    return c_end, (ys, gates, ())

  size = plan.block
  carry, (ys, gates, kept) = jax.lax.scan(
    block,
    carry,
    (_blocks(time, size), _blocks(xs, size)),
    reverse=plan.reverse,
    unroll=_outer_unroll(plan),
  )
  return carry, _unblock(ys), _unblock(gates), kept


def _span_backward(
  parts: Recurrence,
  plan: Plan,
  params: Params,
  xs: Array,
  time: Array,
  lengths: Array | None,
  kept: Any,
  d_carry: Carry,
  d_ys: Array,
  d_gates: Any,
) -> tuple[Carry, Params, Array]:
  """Pull back through the blocks of a span, last block first; sum their weight gradients."""

  def block(acc: tuple[Carry, Params], inputs: Any) -> tuple[tuple[Carry, Params], Array]:
    dc, dp = acc
    t, x, (before, hhs), dy, dg = inputs
    residuals = (before, parts.project(params, x), hhs)
    dc, dp_b, dx = _block_backward(parts, plan, params, x, t, lengths, residuals, dc, dy, dg)
    return (dc, _add(dp, dp_b)), dx

  size = plan.block
  inputs = (
    _blocks(time, size),
    _blocks(xs, size),
    kept,
    _blocks(d_ys, size),
    _blocks(d_gates, size),
  )
  (d_carry0, d_params), d_xs = jax.lax.scan(
    block,
    (d_carry, _zeros_like(params)),
    inputs,
    reverse=not plan.reverse,
    unroll=_outer_unroll(plan),
  )
  return d_carry0, d_params, _unblock(d_xs)


# ---------------------------------------------------------------------------
# The custom VJP: whole sequence, or segment by segment under remat
# ---------------------------------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _sequence(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[Carry, Array, Any]:
  parts = recurrence(cell, plan.matmul_dtype)
  time = loop.time(xs.shape[0])
  carry, ys, gates, _ = _span_forward(parts, plan, params, carry, xs, time, lengths, save=False)
  return carry, ys, gates


def _sequence_fwd(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[tuple[Carry, Array, Any], Any]:
  parts = recurrence(cell, plan.matmul_dtype)
  time = loop.time(xs.shape[0])
  if plan.remat is None:
    out, ys, gates, kept = _span_forward(parts, plan, params, carry, xs, time, lengths, save=True)
    return (out, ys, gates), (params, xs, lengths, kept)

  def segment(c: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Any]:
    t, x = inputs
    c_end, ys, gates, _ = _span_forward(parts, plan, params, c, x, t, lengths, save=False)
    return c_end, (ys, gates, c)

  size = plan.remat
  out, (ys, gates, starts) = jax.lax.scan(
    segment, carry, (_blocks(time, size), _blocks(xs, size)), reverse=plan.reverse
  )
  return (out, _unblock(ys), _unblock(gates)), (params, xs, lengths, starts)


def _sequence_bwd(cell: Any, plan: Plan, saved: Any, cts: Any) -> tuple[Any, ...]:
  parts = recurrence(cell, plan.matmul_dtype)
  params, xs, lengths, kept = saved
  d_carry, d_ys, d_gates = cts
  time = loop.time(xs.shape[0])
  if plan.remat is None:
    d_carry0, d_params, d_xs = _span_backward(
      parts, plan, params, xs, time, lengths, kept, d_carry, d_ys, d_gates
    )
    return d_params, d_xs, d_carry0, None

  def segment(acc: tuple[Carry, Params], inputs: Any) -> tuple[tuple[Carry, Params], Array]:
    dc, dp = acc
    t, x, start, dy, dg = inputs
    _, _, _, kept_s = _span_forward(parts, plan, params, start, x, t, lengths, save=True)
    dc, dp_s, dx = _span_backward(parts, plan, params, x, t, lengths, kept_s, dc, dy, dg)
    return (dc, _add(dp, dp_s)), dx

  size = plan.remat
  inputs = (
    _blocks(time, size),
    _blocks(xs, size),
    kept,
    _blocks(d_ys, size),
    _blocks(d_gates, size),
  )
  (d_carry0, d_params), d_xs = jax.lax.scan(
    segment, (d_carry, _zeros_like(params)), inputs, reverse=not plan.reverse
  )
  return d_params, _unblock(d_xs), d_carry0, None


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def _pad(xs: Array, lengths: Array | None, steps: int, padded: int) -> tuple[Array, Array | None]:
  """Pad ``xs`` to ``padded`` steps with steps past every length (they hold the carry)."""
  if padded == steps:
    return xs, lengths
  xs = jnp.concatenate([xs, jnp.zeros((padded - steps, *xs.shape[1:]), xs.dtype)])
  if lengths is None:
    lengths = jnp.full(xs.shape[1:-1], steps, jnp.int32)
  return xs, lengths


def _trim(ys: Array, gates: Any, steps: int) -> tuple[Array, Any]:
  return jax.tree.map(lambda a: a[:steps], (ys, gates))


def run(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[Carry, Array, Any]:
  """The fused runner: ``(carry, ys, gates)`` as the plain scan, with the hand-written VJP.

  ``xs`` and ``lengths`` come prepared (:mod:`gatejax.run.prepare`: padding zeroed, int32).
  """
  steps = xs.shape[0]
  if plan.padded == 0:
    return run_autodiff(cell, plan, params, xs, carry, lengths)
  xs, lengths = _pad(xs, lengths, steps, plan.padded)
  out = _sequence(cell, plan, params, xs, carry, lengths)
  carry, ys, gates = cast(tuple[Carry, Array, Any], out)
  return carry, *_trim(ys, gates, steps)


def run_autodiff(
  cell: Any, plan: Plan, params: Params, xs: Array, carry: Carry, lengths: Array | None
) -> tuple[Carry, Array, Any]:
  """The same forward pass, differentiated by JAX; under ``remat``, checkpointed per segment."""
  steps = xs.shape[0]
  parts = recurrence(cell, plan.matmul_dtype)
  if plan.padded == 0:
    pxs = parts.project(params, xs)
    body = lambda c, px: parts.recur(params, c, px)
    carry, (ys, gates) = jax.lax.scan(lambda c, px: _drop(body(c, px), plan), carry, pxs)
    return carry, ys, gates
  xs, lengths = _pad(xs, lengths, steps, plan.padded)
  time = loop.time(plan.padded)
  if plan.remat is None:
    carry, ys, gates, _ = _span_forward(parts, plan, params, carry, xs, time, lengths, save=False)
    return carry, *_trim(ys, gates, steps)

  # Only each segment's input carry is saved; its steps are recomputed in the backward pass.
  @partial(jax.checkpoint, prevent_cse=False)
  def segment(c: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Any]:
    t, x = inputs
    c, ys, gates, _ = _span_forward(parts, plan, params, c, x, t, lengths, save=False)
    return c, (ys, gates)

  size = plan.remat
  carry, (ys, gates) = jax.lax.scan(
    segment, carry, (_blocks(time, size), _blocks(xs, size)), reverse=plan.reverse
  )
  return carry, *_trim(_unblock(ys), _unblock(gates), steps)


def _drop(out: tuple[Carry, Array, Any], plan: Plan) -> tuple[Carry, tuple[Array, Any]]:
  carry, y, gates = out
  return carry, (y, gates if plan.with_gates else ())
