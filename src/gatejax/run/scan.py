r"""Running a cell over a sequence: :func:`~gatejax.scan` and :func:`~gatejax.scan_with_gates`.

Sequences are time-major, as ``jax.lax.scan``: ``xs`` has shape
``(time, *batch, input)``. Variable lengths are right-padded: a step at
``t >= lengths[b]`` leaves sequence ``b``'s carry unchanged and writes zeros to
its output, so the returned carry is each sequence's carry after its last valid
step, and ``reverse=True`` reads each sequence from its own last valid step back
to its first.

The input half of every step (``cell.project``) has no time dependence, so it is
applied to the whole sequence at once, one large matmul, before the recurrence;
the scan body runs only the recurrent half (``cell.recur``). Both halves are the
cell's own functions, so ``scan`` and ``cell.step`` cannot disagree.

Every call is prepared once (:mod:`gatejax.run.prepare`), planned once
(:func:`gatejax.run.options.plan`) and run by one runner: the sequential loop with a
hand-written VJP of the whole sequence (:mod:`gatejax.run.fused`, the default: the same
numbers as JAX's autodiff of the scan, with the weight gradients as a few large matmuls
after the reverse sweep), the same loop under JAX's autodiff (``impl="autodiff"``, needed
for ``jax.jvp``/``jax.jacfwd``), all steps at once for a cell affine in its carry
(:mod:`gatejax.run.associative`), or a cell's chunkwise form
(:mod:`gatejax.run.chunkwise`).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

import gatejax.run.associative as associative
import gatejax.run.chunkwise as chunkwise
import gatejax.run.fused as fused
import gatejax.run.prepare as prepare
from gatejax._jit import bounded_jit
from gatejax.run.options import DEFAULT_OPTIONS, ScanOptions, plan, resolve_options

__all__ = ["scan", "scan_with_gates"]

Params = Any
Carry = Any

_RUNNERS = {
  "fused": fused.run,
  "autodiff": fused.run_autodiff,
  "associative": associative.run,
  "chunkwise": chunkwise.run,
}


@bounded_jit(static_argnames=("cell", "reverse", "with_gates", "options"))
def _run(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  *,
  reverse: bool,
  with_gates: bool,
  options: ScanOptions = DEFAULT_OPTIONS,
) -> tuple[Carry, Array, Any]:
  """The one recurrence behind :func:`scan`, :func:`scan_with_gates` and the stacks: the
  padding cleaned, the options planned, and the planned runner run."""
  the_plan = plan(options, cell, xs.shape[0], reverse=reverse, with_gates=with_gates)
  xs = prepare.clean(xs, lengths)
  return _RUNNERS[the_plan.impl](cell, the_plan, params, xs, carry, lengths)


def scan(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
  unroll: int | bool = 1,
  impl: str = "auto",
  remat: int | bool | None = None,
  matmul_dtype: DTypeLike | None = None,
  block: int | None = None,
  chunk_size: int | None = None,
  options: ScanOptions | None = None,
) -> tuple[Carry, Float[Array, "time *batch hidden"]]:
  r"""Run ``cell`` over a time-major sequence; jit-compiled, equal to a loop over ``cell.step``.

  .. math:: (c_t, y_t) = \mathrm{step}(\theta, c_{t-1}, x_t), \quad t = 1 \dots T

  Any cell runs here (:mod:`gatejax.protocol`): a built-in one or a user's value with
  ``hidden_size``, ``init``, ``initial_carry`` and ``step``. What the cell offers beyond
  those (the ``project``/``recur`` split, a ``split`` for the hand-written VJP, a
  ``affine``) makes it faster, never different.

  Args:
    cell: a cell, e.g. from :func:`gatejax.gru`.
    params: the cell's parameters, from ``cell.init``.
    xs: inputs of shape ``(time, *batch, input_size)``, floating point.
    carry: the initial carry; ``None`` gives ``cell.initial_carry(batch, dtype)`` in
      the dtype the step computes in (the result type of ``xs`` and ``params``).
    lengths: integer array of shape ``batch``, each in ``[0, time]``; sequences are
      right-padded. Steps at ``t >= length`` leave the carry unchanged and output zeros;
      what the padding holds (NaN included) reaches neither the outputs nor any gradient.
    reverse: read each sequence from its last valid step back to its first;
      ``ys[t]`` is still the output at input position ``t``.
    unroll, impl, remat, matmul_dtype, block, chunk_size: how the sequence is computed;
      see :class:`~gatejax.ScanOptions`.
    options: all of those in one :class:`~gatejax.run.options.ScanOptions` (then leave the
      keywords out).

  Returns:
    ``(carry, ys)``: each sequence's carry after its last valid step, and the
    outputs of shape ``(time, *batch, hidden_size)``.

  Raises:
    TypeError: ``xs`` is not floating point, ``lengths`` is not integer, the carry or
      the parameters have the wrong structure or dtype, or the cell's ``step`` disagrees
      with its own ``initial_carry``.
    ValueError: a shape, a length or an option is wrong; the message names it.

  Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) of a call to ``scan`` picks
  the autodiff implementation under ``impl="auto"``. Two cases cannot be told from reverse
  mode when ``scan`` is traced, and need ``impl="autodiff"``: ``jax.linearize`` (it traces
  as ``jax.grad`` does, but its linear map runs forward), and a function that is jitted
  *before* it is differentiated in forward mode.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lstm(16)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jnp.ones((10, 2, 4))                 # time 10, batch 2
    >>> carry, ys = gj.scan(cell, params, xs, lengths=jnp.array([10, 3]))
    >>> ys.shape, carry.h.shape
    ((10, 2, 16), (2, 16))
    >>> bool((ys[3:, 1] == 0).all())            # past sequence 1's length
    True
  """
  options = resolve_options(
    options,
    impl=impl,
    remat=remat,
    matmul_dtype=matmul_dtype,
    block=block,
    unroll=unroll,
    chunk_size=chunk_size,
  )
  carry, ys, _ = _checked_run(cell, params, xs, carry, lengths, False, reverse, options)
  return carry, ys


def scan_with_gates(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
  unroll: int | bool = 1,
  impl: str = "auto",
  remat: int | bool | None = None,
  matmul_dtype: DTypeLike | None = None,
  block: int | None = None,
  chunk_size: int | None = None,
  options: ScanOptions | None = None,
) -> tuple[Carry, Float[Array, "time *batch hidden"], Any]:
  """:func:`scan` that also returns every step's gate activations, time first.

  The gates come from ``cell.recur``, the same function the plain scan runs:
  :class:`~gatejax.cells.GRUGates`, :class:`~gatejax.cells.LSTMGates`, or ``()``
  for the RNN and for a cell without ``recur``, each leaf of shape
  ``(time, *batch, hidden)``. At padded steps (``t >= lengths``) they are what the cell
  would compute from the held carry and a zero input (the padding itself never enters);
  mask them out before taking statistics. The
  keyword options are :func:`scan`'s; gradients flow through the gates too.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(8)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> _, ys, gates = gj.scan_with_gates(cell, params, jnp.ones((5, 2)))
    >>> gates.z.shape
    (5, 8)
  """
  options = resolve_options(
    options,
    impl=impl,
    remat=remat,
    matmul_dtype=matmul_dtype,
    block=block,
    unroll=unroll,
    chunk_size=chunk_size,
  )
  return _checked_run(cell, params, xs, carry, lengths, True, reverse, options)


_FORWARD_MODE = "forward-mode autodiff"


def _checked_run(
  cell: Any,
  params: Params,
  xs: Any,
  carry: Carry,
  lengths: Any,
  with_gates: bool,
  reverse: bool,
  options: ScanOptions,
) -> tuple[Carry, Array, Any]:
  """Check the arguments of :func:`scan`/:func:`scan_with_gates`, then run :func:`_run`."""
  call = prepare.prepare(cell, params, xs, carry, lengths, unroll=options.unroll)
  xs, carry, lengths = call.xs, call.carry, call.lengths
  dtype = jax.tree.leaves(carry)[0].dtype if jax.tree.leaves(carry) else xs.dtype
  if options.matmul_dtype is not None and jnp.dtype(options.matmul_dtype) == jnp.dtype(dtype):
    options = dataclasses.replace(options, matmul_dtype=None)
  run = partial(
    _run, cell, params, xs, carry, lengths, reverse=bool(reverse), with_gates=with_gates
  )
  try:
    return run(options=options)
  except TypeError as e:
    # A custom VJP has no forward mode. Under jax.jvp/jacfwd/linearize the call raises at
    # trace time; "auto" then runs JAX's own autodiff, which has both modes.
    if _FORWARD_MODE not in str(e) or options.impl not in ("auto", "fused"):
      raise
    if options.impl == "fused":
      raise TypeError(
        'impl="fused" has a hand-written reverse-mode derivative only; for forward-mode '
        '(jax.jvp, jax.jacfwd, jax.linearize) pass impl="autodiff" or "auto"'
      ) from None
    return run(options=dataclasses.replace(options, impl="autodiff"))


# ---------------------------------------------------------------------------
# Stacks: several layers, optionally bidirectional
# ---------------------------------------------------------------------------
