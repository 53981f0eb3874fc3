r"""Where a recurrent gradient comes from: per-step contributions, carry adjoints, Jacobian norms.

A recurrent network applies the same parameters :math:`\theta` at every step,
:math:`c_{t+1} = f(\theta, c_t, x_t)`, so the gradient of a loss is a sum over steps,

.. math::

  \frac{\partial L}{\partial \theta} = \sum_{t=0}^{T-1} g_t, \qquad
  g_t = \Big(\frac{\partial L}{\partial c_{t+1}}\Big)^{\!\top}
        \frac{\partial f}{\partial \theta}(\theta, c_t, x_t),

and the adjoint :math:`\partial L / \partial c_{t+1}` of a step far from the loss carries a
product of many step Jacobians :math:`\partial c_{s+1} / \partial c_s`. When those products
shrink, the far terms :math:`g_t` fade and the gradient is made of the near steps only:
that is what *vanishing* means (the gradient is not zero; the distant past stops mattering).
This module measures it exactly, for any :class:`~gatejax.cells.Cell`.

Conventions (``T`` steps, step ``t = 0 .. T-1`` reads ``xs[t]``):

* carries are numbered as in ``jacobian_norms``: :math:`c_0` is the initial carry and
  :math:`c_k` the carry after ``k`` steps, so step ``t`` maps :math:`c_t` to :math:`c_{t+1}`
  and :math:`c_T` is the final carry;
* **steps back**: step ``t`` lies ``T - 1 - t`` steps back from the last step (the last
  step is 0 steps back), so ``curve[::-1][d]`` is the value ``d`` steps back. For
  ``jacobian_norms`` the *distance* of entry ``k`` is ``T - k`` Jacobian factors (the last
  entry is distance 1);
* every cell here outputs its hidden state, ``y_t = h_{t+1}`` read from the new carry, so the
  loss reaches a carry both through that step's output and through the final carry.

Every sweep is one forward scan that stores the carries and one reverse scan that applies
``jax.vjp`` of the cell's own ``step`` at each step, the cost of a gradient with
rematerialisation, never one ``jax.grad`` per step. ``lengths`` and ``carry`` mean what they
mean in :func:`gatejax.scan`: a step past a sequence's length holds its carry, outputs zero,
and contributes exactly zero.

The summaries (:func:`gradient_horizon`, :func:`near_share`, :func:`far_share`,
:func:`decay_rate`) turn a curve into the number a reader looks for, and
:func:`gate_statistics` records what the gates do along a sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

import gatejax.run.fused as fused
import gatejax.run.loop as loop
import gatejax.run.prepare as prepare
from gatejax import _validate, affine, protocol
from gatejax._jit import bounded_jit
from gatejax.protocol import Recurrence
from gatejax.run.options import ScanOptions, resolve_options
from gatejax.run.scan import scan_with_gates

__all__ = [
  "GateStatistics",
  "Summary",
  "carry_gradients",
  "contribution_norms",
  "decay_rate",
  "far_share",
  "gate_statistics",
  "gradient_horizon",
  "jacobian_norms",
  "near_share",
  "step_contributions",
]

Params = Any
Carry = Any
LossFn = Callable[[Array, Carry], Array]
# A curve over time, time first: (T,) or one per batch element (T, *batch).
Curve = Float[ArrayLike, "time *batch"]
JacobianNorms = Float[Array, "time *batch"]


# ---------------------------------------------------------------------------
# The sweeps
# ---------------------------------------------------------------------------


def _step_fn(parts: Recurrence, params: Params) -> Callable[[Carry, Array], tuple[Carry, Array]]:
  """The cell's step, ``recur ∘ project`` (in the run's matmul precision), without gates."""

  def step(c: Carry, x: Array) -> tuple[Carry, Array]:
    new, y, _ = parts.recur(params, c, parts.project(params, x))
    return new, y

  return step


def _forward(
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


def _loss_cotangents(loss_fn: LossFn, ys: Array, final: Carry) -> tuple[Array, Carry]:
  """``(∂L/∂ys, ∂L/∂c_T)``, after checking that ``loss_fn`` returns a real scalar."""
  out = jax.eval_shape(loss_fn, ys, final)
  if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
    shape = getattr(out, "shape", type(out).__name__)
    raise ValueError(f"loss_fn(ys, final_carry) must return a scalar, got {shape}")
  if not jnp.issubdtype(out.dtype, jnp.floating):
    raise TypeError(f"loss_fn(ys, final_carry) must return a real float, got {out.dtype}")
  return jax.grad(loss_fn, argnums=(0, 1))(ys, final)


def _exponent(magnitude: Array) -> Array:
  """The binary exponent ``e`` of a magnitude (``m = f·2^e``, ``f`` in ``[0.5, 1)``); 0 for 0,
  infinity and NaN, so that scaling by ``2^-e`` leaves those as they are."""
  usable = (magnitude > 0) & jnp.isfinite(magnitude)
  return jnp.where(usable, jnp.frexp(jnp.where(usable, magnitude, 1))[1], 0)


def _scaled_norm(leaves: list[Array], axes: tuple[int, ...] | None = None) -> Array:
  """The L2 norm over ``leaves`` (reduced over ``axes``), immune to under- and overflow.

  Far contributions reach 1e-30 in float32, whose squares would flush to zero, and near
  ones can exceed 1e19, whose squares overflow: the squares are taken after scaling every
  entry by ``2^-e``, ``e`` the binary exponent of the largest magnitude. The scaling is
  ``ldexp``, exact, and never a division: XLA divides by multiplying with the reciprocal,
  and the reciprocal of a number above ``2^126`` flushes to zero in float32.
  """
  scale = _magnitude(leaves, axes)
  e = _exponent(scale)
  total = sum(jnp.sum(jnp.square(_ldexp(leaf, -e, axes)), axis=axes) for leaf in leaves)
  return jnp.where(jnp.isfinite(scale), jnp.ldexp(jnp.sqrt(total), e), scale)


def _magnitude(leaves: list[Array], axes: tuple[int, ...] | None) -> Array:
  """The largest ``|entry|`` over ``leaves`` (reduced over ``axes``), NaN where any entry is.

  XLA's CPU max ignores NaN (its fast min/max), so an all-NaN block would read as the
  reduction's start value, ``-inf``: NaN is found separately and kept.
  """
  largest = jnp.stack([jnp.max(jnp.abs(leaf), axis=axes) for leaf in leaves]).max(axis=0)
  nan = jnp.stack([jnp.any(jnp.isnan(leaf), axis=axes) for leaf in leaves]).any(axis=0)
  return jnp.where(nan, jnp.full_like(largest, jnp.nan), largest)


def _ldexp(leaf: Array, e: Array, axes: tuple[int, ...] | None) -> Array:
  """``leaf · 2^e`` with ``e`` reduced over ``axes`` of ``leaf`` (broadcast back)."""
  return jnp.ldexp(leaf, _expand(e, leaf, axes))


def _expand(scale: Array, like: Array, axes: tuple[int, ...] | None) -> Array:
  if axes is None:
    return scale
  return jnp.expand_dims(scale, tuple(a % like.ndim for a in axes))


def _global_norm(tree: Any) -> Array:
  leaves = [jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)]
  return _scaled_norm(leaves) if leaves else jnp.zeros(())


@bounded_jit(static_argnames=("cell", "loss_fn", "emit", "options"))
def _backward(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  loss_fn: LossFn,
  emit: Literal["contributions", "norms", "carries"],
  options: ScanOptions,
) -> Any:
  """One forward and one reverse sweep; per step emit ``g_t``, ``‖g_t‖`` or ``∂L/∂c_{t+1}``."""
  xs = prepare.clean(xs, lengths)
  parts = fused.recurrence(cell, options.matmul_dtype)
  final, before, ys = _forward(parts, params, xs, carry, lengths, options.unroll)
  g_ys, g_final = _loss_cotangents(loss_fn, ys, final)
  read = protocol.reader(cell, params, carry, xs[0]) if emit == "carries" else None

  def body(g_after: Carry, inputs: tuple[Array, Array, Carry, Array]) -> tuple[Carry, Any]:
    t, x, c, g_y = inputs
    # One linearisation of step t, pulled back from both of its results: the new carry
    # (read by everything after it) and the output y_t (read by the loss).
    (new, _), vjp = jax.vjp(
      lambda p, c: loop.masked_step(_step_fn(parts, p), lengths)(c, x, t), params, c
    )
    g_params, g_before = vjp((g_after, g_y))
    if emit == "contributions":
      return g_before, g_params
    if emit == "norms":
      return g_before, _global_norm(g_params)
    if read is None:
      return g_before, g_after
    # y_t is read from c_{t+1}: the carry's adjoint includes the loss's use of y_t.
    g_y = loop.zero_past(t < lengths, g_y) if lengths is not None else g_y
    read_fn = cast(Callable[..., Array], read)
    _, read_vjp = jax.vjp(lambda c1: read_fn(params, c1, x), new)
    (read_t,) = read_vjp(g_y)
    return g_before, jax.tree.map(jnp.add, g_after, read_t)

  time = loop.time(xs.shape[0])
  _, out = jax.lax.scan(
    body, g_final, (time, xs, before, g_ys), reverse=True, unroll=options.unroll
  )
  return out


def _check_loss_fn(loss_fn: Any) -> None:
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable as loss_fn(ys, final_carry), got {loss_fn!r}")


def step_contributions(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Params:
  r"""The exact split of :math:`\partial L / \partial \theta` by time step.

  .. math::

    g_t = \Big(\frac{\partial L}{\partial c_{t+1}}\Big)^{\!\top}
          \frac{\partial\, \mathrm{step}}{\partial \theta}(\theta, c_t, x_t),
    \qquad \sum_{t=0}^{T-1} g_t = \frac{\partial L}{\partial \theta}

  ``g_t`` is the part of the gradient that flows through step ``t``'s use of the
  parameters, its input projection and its recurrence alike, for
  ``L = loss_fn(*reversed(gj.scan(cell, params, xs, carry=carry, lengths=lengths)))``,
  i.e. ``loss_fn(ys, final_carry)``. Steps past a sequence's length contribute exactly zero.
  One forward and one reverse sweep; the result holds ``T`` copies of the parameters (use
  :func:`contribution_norms` when only their sizes are wanted).

  Args:
    cell: a :class:`~gatejax.cells.Cell`.
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    loss_fn: ``loss_fn(ys, final_carry) -> scalar``. The function is a static argument of
      the compiled sweep: pass the same function object to reuse the compilation.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    options: a :class:`~gatejax.ScanOptions`; the sweep honours ``matmul_dtype`` and
      ``unroll`` (``impl``, ``remat`` and ``block`` choose how :func:`gatejax.scan` is
      differentiated; a sweep is its own differentiation, step by step).

  Returns:
    A pytree shaped like ``params`` with a leading axis ``T``: ``contrib[t]`` is ``g_t``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs = jax.random.normal(jax.random.key(1), (6, 2, 3))
    >>> loss = lambda ys, carry: jnp.sum(ys[-1] ** 2)
    >>> contrib = gj.analysis.step_contributions(cell, params, xs, loss)
    >>> contrib.w_h.shape
    (6, 4, 12)
    >>> grad = jax.grad(lambda p: loss(gj.scan(cell, p, xs)[1], None))(params)
    >>> bool(jnp.allclose(contrib.w_h.sum(0), grad.w_h, atol=1e-6))
    True
  """
  _check_loss_fn(loss_fn)
  options = resolve_options(options)
  xs, carry, lengths, _, _ = prepare.prepare(
    cell, params, xs, carry, lengths, unroll=options.unroll
  )
  _validate.float_carry(carry, "step_contributions")
  return _backward(cell, params, xs, carry, lengths, loss_fn, "contributions", options)


def contribution_norms(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Float[Array, " time"]:
  r"""The global L2 norm of every step's contribution, :math:`\lVert g_t \rVert_2`.

  The norm is taken over all parameter leaves together, inside the reverse sweep, so only
  one step's contribution is alive at a time: memory is that of a gradient plus the
  stored carries (``T × batch × carry`` numbers), whatever the parameter count. It is
  computed in a way that neither underflows nor overflows for far, tiny contributions.
  Arguments as :func:`step_contributions`.

  Returns:
    ``(T,)``: ``norms[t] = ‖g_t‖``; ``norms[::-1][d]`` is the contribution ``d`` steps back.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rnn(16)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jax.random.normal(jax.random.key(1), (50, 8, 4))
    >>> norms = gj.analysis.contribution_norms(cell, params, xs, lambda ys, c: jnp.sum(ys[-1] ** 2))
    >>> norms.shape
    (50,)
    >>> bool(norms[0] < 1e-3 * norms[-1])    # 49 steps back has all but vanished
    True
  """
  _check_loss_fn(loss_fn)
  options = resolve_options(options)
  xs, carry, lengths, _, _ = prepare.prepare(
    cell, params, xs, carry, lengths, unroll=options.unroll
  )
  _validate.float_carry(carry, "contribution_norms")
  return _backward(cell, params, xs, carry, lengths, loss_fn, "norms", options)


def carry_gradients(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Carry:
  r"""The adjoint of every carry, :math:`\partial L / \partial c_{t+1}` for ``t = 0 .. T-1``.

  ``adj[t]`` is the gradient with respect to the carry *after* step ``t`` (``c_{t+1}``),
  its components taken as independent variables, through every later use of it: the
  output of step ``t`` (``y_t = h_{t+1}``, zero past a sequence's length) and all later
  steps, down to the final carry. ``adj[T-1]`` is thus ``∂L/∂c_T`` plus the output term of
  the last step. Past a sequence's length the carry is held, so its adjoint is that of the
  final carry. One reverse sweep; arguments as :func:`step_contributions`.

  "The output of step ``t``" counts as a use of ``c_{t+1}`` when the cell reads its output
  from its new carry, as every built-in cell does (``y_t = h_{t+1}``): when it offers
  ``read(params, carry, x)``, or when its ``step`` returns one leaf of the new carry as ``y``. A
  cell whose output is computed beside the carry has ``y_t`` as a use of ``c_t`` instead.

  Returns:
    A pytree shaped like the carry with a leading axis ``T`` (for the LSTM a
    :class:`~gatejax.cells.LSTMState` of ``(T, *batch, hidden)`` arrays).

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lstm(4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> xs = jnp.ones((5, 3, 2))
    >>> adj = gj.analysis.carry_gradients(cell, params, xs, lambda ys, c: jnp.sum(c.c))
    >>> adj.c.shape
    (5, 3, 4)
    >>> bool(jnp.all(adj.c[-1] == 1.0))          # ∂(Σ c_T)/∂c_T
    True
  """
  _check_loss_fn(loss_fn)
  options = resolve_options(options)
  xs, carry, lengths, _, _ = prepare.prepare(
    cell, params, xs, carry, lengths, unroll=options.unroll
  )
  _validate.float_carry(carry, "carry_gradients")
  if xs.shape[0] == 0:  # no step, no carry after one
    return jax.tree.map(lambda leaf: jnp.zeros((0, *leaf.shape), leaf.dtype), carry)
  return _backward(cell, params, xs, carry, lengths, loss_fn, "carries", options)


def _identity_cotangents(carry: Carry, batch_ndim: int) -> tuple[Carry, int]:
  """One cotangent per flattened carry component: a carry pytree with a leading axis ``D``.

  A leaf of shape ``(*batch, *features)`` contributes ``prod(features)`` components, so
  any carry (several leaves, any trailing shape) is flattened per batch element.
  """
  leaves, treedef = jax.tree.flatten(carry)
  sizes = [math.prod(leaf.shape[batch_ndim:]) for leaf in leaves]
  D = sum(sizes)
  eye = jnp.eye(D, dtype=leaves[0].dtype)
  blocks, start = [], 0
  for leaf, size in zip(leaves, sizes, strict=True):
    features = leaf.shape[batch_ndim:]
    block = eye[:, start : start + size].reshape((D,) + (1,) * batch_ndim + features)
    blocks.append(jnp.broadcast_to(block, (D, *leaf.shape)))
    start += size
  return jax.tree.unflatten(treedef, blocks), D


def _matrix_norm(rows: Carry, ord: int | str, batch_ndim: int) -> Array:
  """Norm of ``∂c_T/∂c_k`` per batch element, from its ``D`` rows (a carry with leading ``D``).

  Scaled by the largest entry, so a matrix of tiny or huge finite entries keeps its norm
  (``inf`` only where the norm itself exceeds the dtype's range). The SVD of ``ord=2``
  runs in at least float32: LAPACK has no half-precision kernels.
  """
  leaves = jax.tree.leaves(rows)
  flat = jnp.concatenate(
    [leaf.reshape((*leaf.shape[: 1 + batch_ndim], -1)) for leaf in leaves], axis=-1
  )  # (D_out, *batch, D_in)
  matrices = jnp.moveaxis(flat, 0, -2)  # (*batch, D_out, D_in)
  if ord == "fro":
    return _scaled_norm([matrices], axes=(-2, -1))
  dtype = matrices.dtype
  work = matrices.astype(jnp.float32) if jnp.finfo(dtype).bits < 32 else matrices
  scale = _magnitude([work], (-2, -1))
  e = _exponent(scale)
  finite = jnp.isfinite(scale)[..., None, None]
  unit = jnp.where(finite, _ldexp(work, -e, (-2, -1)), jnp.zeros_like(work))
  norm = jnp.ldexp(jnp.linalg.norm(unit, ord=2, axis=(-2, -1)), e)
  return jnp.where(jnp.isfinite(scale), norm, scale).astype(dtype)


@bounded_jit(static_argnames=("cell", "ord", "options"))
def _jacobian_sweep(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  ord: int | str,
  options: ScanOptions,
) -> Array:
  xs = prepare.clean(xs, lengths)
  batch_ndim = xs.ndim - 2
  if _diagonal(cell, options) is not None:
    return _diagonal_norms(cell, params, xs, carry, lengths, ord)
  parts = fused.recurrence(cell, options.matmul_dtype)
  final, before, _ = _forward(parts, params, xs, carry, lengths, options.unroll)
  rows, _ = _identity_cotangents(final, batch_ndim)
  step = loop.masked_step(_step_fn(parts, params), lengths)
  exponent = jnp.zeros(xs.shape[1:-1], jnp.int32)

  def body(acc: tuple[Carry, Array], inputs: tuple[Array, Array, Carry]) -> tuple[Any, Array]:
    rows, exponent = acc
    t, x, c = inputs
    # One linearisation of the step, pulled back along all D rows of ∂c_T/∂c_{t+1} at once.
    _, vjp = jax.vjp(lambda c: step(c, x, t)[0], c)
    (rows,) = jax.vmap(vjp)(rows)
    # The rows carry ∂c_T/∂c_t / 2^exponent: renormalised (exactly, by powers of two) at
    # every step, so a product of T Jacobians neither underflows nor overflows on its way.
    e = _exponent(_row_magnitude(rows, batch_ndim))
    rows = jax.tree.map(lambda a: jnp.ldexp(a, _expand_batch(-e, a)), rows)
    exponent = exponent + e
    norm = _matrix_norm(rows, ord, batch_ndim)
    return (rows, exponent), jnp.ldexp(norm, exponent.astype(jnp.int32))

  time = loop.time(xs.shape[0])
  _, norms = jax.lax.scan(
    body, (rows, exponent), (time, xs, before), reverse=True, unroll=options.unroll
  )
  return norms


def _row_magnitude(rows: Carry, batch_ndim: int) -> Array:
  """The largest magnitude of ``D`` rows per batch element: ``(*batch,)`` (NaN kept)."""
  per_batch = [
    jnp.moveaxis(a, 0, -1).reshape((*a.shape[1 : 1 + batch_ndim], -1))
    for a in jax.tree.leaves(rows)
  ]
  return _magnitude(per_batch, (-1,))


def _expand_batch(e: Array, like: Array) -> Array:
  """``e`` of shape ``batch`` reshaped to broadcast against rows ``(D, *batch, ...)``."""
  return jnp.reshape(e, (1, *e.shape) + (1,) * (like.ndim - 1 - e.ndim))


def _diagonal(cell: Any, options: ScanOptions) -> Any:
  """A cell's ``affine``, when the run keeps its own precision."""
  return protocol.affine_of(cell) if options.matmul_dtype is None else None


def _diagonal_norms(
  cell: Any, params: Params, xs: Array, carry: Carry, lengths: Array | None, ord: int | str
) -> Array:
  r"""Norms of :math:`\prod_{s > k} a_s` for a cell affine in its carry.

  Its step Jacobian is exactly :math:`a_t` (:func:`gatejax.affine.suffix_products`), so the
  product over steps is a reverse cumulative product, with no sweep; a padded step is the
  identity.
  """
  affine_fn = cast(Callable[..., Any], protocol.affine_of(cell))  # _diagonal found it
  aff = affine.check(affine_fn(params, xs), carry, xs.shape[0], f"{protocol.describe(cell)}.affine")
  valid = None if lengths is None else loop.valid_steps(xs.shape[0], lengths)
  products = affine.suffix_products(affine.mask(aff, valid))
  batch_ndim = xs.ndim - 2
  lead = 1 + batch_ndim
  leaves = jax.tree.leaves(products)
  if aff.form == "diagonal":
    # A complex entry λ acts on (Re, Im) as |λ| times a rotation: spectral norm |λ|, and
    # two real components of modulus |λ| in the Frobenius norm.
    flat = [jnp.abs(p).reshape((*p.shape[:lead], -1)) for p in leaves]
    if ord == "fro":
      copies = [
        jnp.concatenate([f, f], axis=-1) if jnp.iscomplexobj(p) else f
        for f, p in zip(flat, leaves, strict=True)
      ]
      return _scaled_norm(copies, axes=(-1,))
    return jnp.max(jnp.concatenate(flat, axis=-1), axis=-1)
  # Matrix form: the Jacobian of a carry leaf (*batch, *heads, K, *rest) is P ⊗ I_rest per
  # head, block-diagonal over heads: spectral norm the largest over heads, Frobenius norm
  # sqrt(Σ_heads |rest|·‖P_h‖²_F).
  norms = []
  for p, c in zip(leaves, jax.tree.leaves(carry), strict=True):
    rest = math.prod(c.shape[p.ndim - 2 :])
    blocks = p.reshape((*p.shape[:lead], -1, *p.shape[-2:]))  # (T, *batch, heads, K, K)
    if ord == "fro":
      norms.append(_scaled_norm([blocks * rest**0.5], axes=(-3, -2, -1)))
    else:
      work = blocks.astype(jnp.float32) if jnp.finfo(blocks.dtype).bits < 32 else blocks
      norms.append(
        jnp.max(jnp.linalg.norm(work, ord=2, axis=(-2, -1)), axis=-1).astype(blocks.dtype)
      )
  stacked = jnp.stack(norms, axis=-1)
  return _scaled_norm([stacked], axes=(-1,)) if ord == "fro" else jnp.max(stacked, axis=-1)


def jacobian_norms(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  ord: int | str = 2,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> JacobianNorms:
  r"""How much the final carry still depends on each earlier carry: :math:`\lVert \partial c_T / \partial c_k \rVert`.

  .. math::

    \mathrm{jn}[k] = \Big\lVert \frac{\partial c_T}{\partial c_k} \Big\rVert
    = \Big\lVert \prod_{s=T-1}^{k} \frac{\partial c_{s+1}}{\partial c_s} \Big\rVert,
    \qquad k = 0 \dots T-1,

  per batch element, where :math:`c_0` is the initial carry, :math:`c_k` the carry after
  ``k`` steps, and the whole carry is flattened (LSTM: ``h`` and ``c`` together, a
  ``2H × 2H`` matrix). Entry ``k`` is at distance ``T - k``: ``jn[0]`` spans the whole
  sequence and ``jn[-1]`` is one step's Jacobian. Closed forms: with every parameter zero a
  GRU gives ``0.5^(T-k)``; an RNN with identity activation and ``W_h = a·I`` gives
  ``|a|^(T-k)``; a tanh RNN is bounded by ``σ_max(W_h)^(T-k)`` (Pascanu et al. 2013).

  With ``lengths``, :math:`c_T` is each sequence's final carry (after its last valid
  step); a carry past the length *is* that final carry, so its entries are the norm of the
  identity (1 for ``ord=2``, ``sqrt(D)`` for ``"fro"``), and a valid entry ``k`` lies at
  distance ``length - k``.

  For a cell linear in its carry (one that offers ``affine``: minGRU, minLSTM)
  the step Jacobian is exactly :math:`\mathrm{diag}(a_t)`, and the norms are those of a
  cumulative product of diagonals: no sweep, no SVD.

  Cost: one forward sweep and ``D`` reverse sweeps batched into one (``jax.vmap`` over the
  carry components), plus one ``D × D`` matrix norm per step and batch element (an SVD
  for ``ord=2``, several times the cost of the sweeps; ``"fro"`` is cheap). The SVDs run in
  LAPACK: on a small, busy CPU, ``OPENBLAS_NUM_THREADS=1`` keeps its threads from
  oversubscribing the cores (measured on a loaded 2-core machine: sixteen 128 × 128 SVDs
  took 1.6 s with the default threads, 0.02 s with one).

  Args:
    cell: a :class:`~gatejax.cells.Cell`.
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    ord: ``2`` (spectral norm, the largest singular value) or ``"fro"`` (Frobenius).
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    options: a :class:`~gatejax.ScanOptions`, as in :func:`step_contributions`.

  Returns:
    ``(T, *batch)`` norms, in the carry's dtype.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(3)
    >>> params = jax.tree.map(jnp.zeros_like, cell.init(jax.random.key(0), input_size=2))
    >>> jn = gj.analysis.jacobian_norms(cell, params, jnp.ones((4, 2)))
    >>> jn                                       # 0.5 ** (T - k)
    Array([0.0625, 0.125 , 0.25  , 0.5   ], dtype=float32)
  """
  if isinstance(ord, bool) or ord not in (2, "fro"):
    raise ValueError(f'ord must be 2 (spectral) or "fro" (Frobenius), got {ord!r}')
  options = resolve_options(options)
  xs, carry, lengths, _, _ = prepare.prepare(
    cell, params, xs, carry, lengths, unroll=options.unroll
  )
  _validate.float_carry(carry, "jacobian_norms")
  if math.prod(xs.shape[1:-1]) == 0:  # no sequence
    return jnp.zeros(xs.shape[:-1], jnp.result_type(*jax.tree.leaves(carry)))
  return _jacobian_sweep(cell, params, xs, carry, lengths, ord, options)


# ---------------------------------------------------------------------------
# Summaries of a curve
# ---------------------------------------------------------------------------


def _curve(norms: Any, name: str = "norms", *, nan: bool = False) -> Array:
  """``norms`` as a floating array, time first; concrete values must be norms: >= 0, and not
  NaN unless ``nan`` (a summary that leaves NaN entries out, as :func:`decay_rate`)."""
  norms = jnp.asarray(norms)
  if norms.ndim < 1 or norms.shape[0] == 0:
    raise ValueError(f"{name} must have a leading time axis of length >= 1, got {norms.shape}")
  if not jnp.issubdtype(norms.dtype, jnp.floating):
    raise TypeError(f"{name} must be floating point, got {norms.dtype}")
  try:
    values = np.asarray(norms, np.float64)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return norms  # traced: checked by whoever made the values
  if not nan and np.isnan(values).any():
    steps = np.unique(np.nonzero(np.isnan(values))[0])
    raise ValueError(
      f"{name} contain NaN (at time steps {steps[:10].tolist()}): not a curve of norms"
    )
  if (values < 0).any():
    raise ValueError(f"{name} must be >= 0 (norms), got a minimum of {np.nanmin(values):g}")
  return norms


def _steps(k: Any, time: int, name: str = "k") -> int:
  if isinstance(k, bool) or not isinstance(k, int | np.integer):
    raise TypeError(f"{name} must be an int, got {type(k).__name__}")
  if not 0 <= k <= time:
    raise ValueError(f"{name} must lie in [0, {time}] (the curve's length), got {k}")
  return int(k)


def _back(norms: Array) -> tuple[Array, Array]:
  """The curve indexed by steps back ``d = T - 1 - t``, and ``d`` broadcastable to it."""
  back = norms[::-1]
  d = jnp.arange(norms.shape[0]).reshape((-1,) + (1,) * (norms.ndim - 1))
  return back, d


def gradient_horizon(norms: Curve, *, fraction: float = 0.01) -> Int[Array, "*batch"]:
  r"""How far back a gradient reaches: the number of last steps holding every step above ``fraction`` of the peak.

  .. math:: h = 1 + \max\{\, d : n_d \ge \mathrm{fraction} \cdot \max_{d'} n_{d'} \,\}

  where :math:`n_d` = ``norms[::-1][d]`` is the value ``d`` steps back. Every step farther
  back than ``h - 1`` steps contributes less than ``fraction`` of the largest step, so a
  curve that vanishes has a short horizon and one that stays alive has a horizon of ``T``
  (the whole sequence; the true horizon may be longer). Taking the farthest step above the
  threshold, not the first one under it, keeps a single dip of a noisy curve from cutting
  the horizon short.

  Args:
    norms: a curve with time first: :func:`contribution_norms` ``(T,)`` or
      :func:`jacobian_norms` ``(T, *batch)`` (a horizon per batch element).
    fraction: the threshold relative to the peak, in ``(0, 1]``; 0.01 by default.

  Returns:
    An integer in ``[1, T]`` per curve (``0`` for an all-zero curve).

  Example:
    >>> import jax.numpy as jnp, gatejax as gj
    >>> norms = 0.5 ** jnp.arange(20.0)[::-1]     # halves every step back
    >>> int(gj.analysis.gradient_horizon(norms, fraction=0.01))  # 0.5**6 >= 0.01 > 0.5**7
    7
  """
  norms = _curve(norms)
  if not 0 < fraction <= 1:
    raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
  return _horizon(norms, fraction)


@bounded_jit(static_argnames=())
def _horizon(norms: Array, fraction: Array) -> Array:
  back, d = _back(norms)
  peak = jnp.max(back, axis=0, keepdims=True)
  alive = (back >= fraction * peak) & (peak > 0)
  return jnp.max(jnp.where(alive, d + 1, 0), axis=0)


def far_share(norms: Curve, k: int) -> Float[Array, "*batch"]:
  r"""The share of the total contribution that comes from ``k`` or more steps back.

  .. math:: \mathrm{far}(k) = \frac{\sum_{d \ge k} n_d}{\sum_{d} n_d}

  with :math:`n_d` = ``norms[::-1][d]`` the per-step norm ``d`` steps back. The share is of
  the *sum of per-step norms*, not of the norm of the summed gradient (which can be smaller
  when steps cancel): it answers "how much of the gradient signal comes from far away".
  Computed as a ratio of sums, never as ``1 - near_share``, so that shares of 1e-14 keep
  their digits. ``far_share(norms, k) + near_share(norms, k) == 1`` up to rounding, for
  any curve with a non-zero entry; an all-zero curve has both shares 0.

  Args:
    norms: a curve with time first, ``(T, *batch)``.
    k: steps back where "far" begins, in ``[0, T]``; ``T // 2`` gives the far half.

  Example:
    >>> import jax.numpy as jnp, gatejax as gj
    >>> norms = jnp.array([1.0, 1.0, 2.0, 4.0])  # steps 3, 2, 1, 0 back
    >>> float(gj.analysis.far_share(norms, 2))
    0.25
  """
  norms = _curve(norms)
  return _share(norms, _steps(k, norms.shape[0]), far=True)


@bounded_jit(static_argnames=("k", "far"))
def _share(norms: Array, k: int, far: bool) -> Array:
  back, _ = _back(norms)
  part = back[k:] if far else back[:k]
  total = jnp.sum(back, axis=0)
  # A curve with no contribution at all has no share anywhere: 0, not 0 / 0.
  safe = jnp.where(total > 0, total, jnp.ones_like(total))
  return jnp.where(total > 0, jnp.sum(part, axis=0) / safe, jnp.zeros_like(total))


def near_share(norms: Curve, k: int) -> Float[Array, "*batch"]:
  r"""The share of the total contribution that comes from the last ``k`` steps (0 .. k-1 back).

  .. math:: \mathrm{near}(k) = \frac{\sum_{d < k} n_d}{\sum_{d} n_d}

  The complement of :func:`far_share`, with the same definition of share (a sum of
  per-step norms).

  Example:
    >>> import jax.numpy as jnp, gatejax as gj
    >>> float(gj.analysis.near_share(jnp.array([1.0, 1.0, 2.0, 4.0]), 1))
    0.5
  """
  norms = _curve(norms)
  return _share(norms, _steps(k, norms.shape[0]), far=False)


def decay_rate(norms: Curve, *, start: int = 1, stop: int | None = None) -> Float[Array, "*batch"]:
  r"""The fitted per-step decay factor :math:`\rho` of a curve, :math:`n_d \approx C \rho^d`.

  A least-squares line through :math:`(d, \log n_d)` over steps back
  ``start <= d < stop``, returning :math:`\rho = e^{\text{slope}}`: below 1 the
  contribution shrinks by that factor per step back (vanishing), above 1 it grows.
  ``1 / (1 - ρ)`` is the corresponding memory length in steps. Zero, subnormal and
  non-finite entries (a contribution that underflowed, say) are left out of the fit.

  The default range starts one step back because the last step's contribution carries no
  step Jacobian at all (the loss reads it directly) and usually sits off the line; it runs
  to the start of the sequence.

  Args:
    norms: a curve with time first, ``(T, *batch)``.
    start: first step back in the fit.
    stop: one past the last step back in the fit (default ``T``), at least ``start + 2``.
      Of these steps at least two must be usable (positive and finite); with fewer the
      result is NaN.

  Example:
    >>> import jax.numpy as jnp, gatejax as gj
    >>> norms = 3.0 * 0.8 ** jnp.arange(30.0)[::-1]
    >>> round(float(gj.analysis.decay_rate(norms)), 5)
    0.8
  """
  norms = _curve(norms, nan=True)
  T = norms.shape[0]
  start = _steps(start, T, "start")
  stop = T if stop is None else _steps(stop, T, "stop")
  if stop - start < 2:
    raise ValueError(
      f"decay_rate fits a line through steps back start <= d < stop and needs two of them, "
      f"got start={start}, stop={stop}"
    )
  return _decay(norms, start, stop)


@bounded_jit(static_argnames=("start", "stop"))
def _decay(norms: Array, start: int, stop: int) -> Array:
  back, d = _back(norms)
  back, d = back[start:stop], jnp.broadcast_to(d[start:stop], back[start:stop].shape)
  # Subnormals are left out too: XLA on CPU flushes them to zero inside log.
  usable = (back >= jnp.finfo(back.dtype).tiny) & jnp.isfinite(back)
  w = usable.astype(back.dtype)
  y = jnp.log(jnp.where(usable, back, jnp.ones_like(back)))
  x = d.astype(back.dtype)
  count = jnp.sum(w, axis=0)
  x_mean = jnp.sum(w * x, axis=0) / count
  y_mean = jnp.sum(w * y, axis=0) / count
  dx = x - x_mean[None]
  slope = jnp.sum(w * dx * (y - y_mean[None]), axis=0) / jnp.sum(w * dx * dx, axis=0)
  return jnp.exp(slope)


# ---------------------------------------------------------------------------
# Gate statistics
# ---------------------------------------------------------------------------


class Summary(NamedTuple):
  """Mean, standard deviation and range of the valid entries of an array."""

  mean: Array
  std: Array
  min: Array
  max: Array


class GateStatistics(NamedTuple):
  r"""What a cell's gates do along a sequence (valid steps only); see :func:`gate_statistics`.

  Every mapping goes from gate name (the cell's ``gate_names``: GRU ``"r", "z"``; LSTM
  ``"i", "f", "o"``; empty for the RNN and for a cell that reports no gates) to a scalar
  fraction over all valid steps, batch elements and units. With no valid step at all
  (``T = 0``, or every length 0) every fraction and summary is NaN.

  Attributes:
    near_zero: fraction of activations ``< eps`` (the gate is shut).
    near_one: fraction ``> 1 - eps`` (the gate is wide open).
    dead: fraction exactly ``0``: a ReLU ``gate_fn`` produces these, a sigmoid never does.
    dead_units: fraction of units whose gate is exactly ``0`` at every valid step of every
      sequence (the unit never opens that gate, and receives no gradient through it).
    mean: mean activation.
    keep_plus_write: the keep gate plus the write gate (the cell's ``keep_write``):
      ``f + i`` for the LSTM (free in ``[0, 2]``), ``z + (1 - z)`` for the GRU (1 by
      construction); ``None`` for a cell without one (the RNN).
    hidden_norm: ``(T,)`` mean of ``‖h_t‖_2`` over the sequences still valid at step ``t``
      (0 where none is).
  """

  near_zero: dict[str, Array]
  near_one: dict[str, Array]
  dead: dict[str, Array]
  dead_units: dict[str, Array]
  mean: dict[str, Array]
  keep_plus_write: Summary | None
  hidden_norm: Array


def _summary(values: Array, valid: Array) -> Summary:
  """Summary of ``values`` ``(T, *batch, H)`` where ``valid`` ``(T, *batch)``."""
  mask = jnp.broadcast_to(valid[..., None], values.shape)
  count = jnp.sum(mask).astype(values.dtype)
  mean = jnp.sum(jnp.where(mask, values, 0)) / count
  var = jnp.sum(jnp.where(mask, jnp.square(values - mean), 0)) / count
  nothing = jnp.asarray(jnp.nan, values.dtype)
  low = jnp.min(jnp.where(mask, values, jnp.inf), initial=jnp.inf)
  high = jnp.max(jnp.where(mask, values, -jnp.inf), initial=-jnp.inf)
  return Summary(
    mean=mean,
    std=jnp.sqrt(var),
    min=jnp.where(count > 0, low, nothing),
    max=jnp.where(count > 0, high, nothing),
  )


def gate_statistics(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  eps: float = 0.1,
  options: ScanOptions | None = None,
) -> GateStatistics:
  r"""Saturation, dead gates, ``keep + write`` and the hidden-state norm along a sequence.

  The gate activations come from :func:`gatejax.scan_with_gates`, i.e. from the cell's own
  ``recur`` (a cell without one reports no gates: only ``hidden_norm`` is measured);
  ``gate_names`` says which of them are gates, ``keep_write`` which keeps and which
  writes. Steps past a sequence's length are left out of every statistic. The default
  ``eps = 0.1`` calls a gate saturated below 0.1 or above 0.9, as Karpathy, Johnson and
  Fei-Fei (2016, *Visualizing and understanding recurrent networks*) do.

  The additive paths that keep gradients alive are ``z ⊙ h`` (GRU) and ``f ⊙ c`` (LSTM).
  The GRU ties what it keeps to what it writes, ``z + (1 - z) = 1``; the LSTM's ``f`` and
  ``i`` are free, so ``f + i`` may sit anywhere in ``[0, 2]``: ``keep_plus_write`` shows
  where it does.

  Args:
    cell: a :class:`~gatejax.cells.Cell`.
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    eps: saturation margin, in ``(0, 0.5]``.
    options: a :class:`~gatejax.ScanOptions` for the run of the sequence.

  Returns:
    A :class:`GateStatistics`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> xs = jax.random.normal(jax.random.key(1), (20, 4, 3))
    >>> cell = gj.lstm(8, gate_fn=jax.nn.relu)
    >>> stats = gj.analysis.gate_statistics(cell, cell.init(jax.random.key(0), 3), xs)
    >>> sorted(stats.dead)
    ['f', 'i', 'o']
    >>> bool(stats.dead["i"] > 0.2)             # a ReLU gate is exactly 0 about half the time
    True
    >>> cell = gj.gru(8)
    >>> stats = gj.analysis.gate_statistics(cell, cell.init(jax.random.key(0), 3), xs)
    >>> float(stats.keep_plus_write.mean), float(stats.dead["z"])
    (1.0, 0.0)
  """
  if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 0.5:
    raise ValueError(f"eps must be a number in (0, 0.5], got {eps!r}")
  _, ys, gates = scan_with_gates(cell, params, xs, carry=carry, lengths=lengths, options=options)
  acts = protocol.gate_values(cell, gates)
  pair = protocol.keep_write(cell, gates)
  lengths = None if lengths is None else loop.int32(jnp.asarray(lengths))
  return _gate_statistics(ys, acts, pair, lengths, eps)


@bounded_jit(static_argnames=())
def _gate_statistics(
  ys: Array,
  acts: dict[str, Array],
  keep_write: tuple[Array, Array] | None,
  lengths: Array | None,
  eps: float,
) -> GateStatistics:
  T, batch_shape = ys.shape[0], ys.shape[1:-1]
  ones = jnp.ones((T, *batch_shape), bool)
  valid = ones if lengths is None else loop.valid_steps(T, lengths)
  mask = jnp.broadcast_to(valid[..., None], ys.shape)
  count = jnp.sum(mask).astype(ys.dtype)

  def fraction(condition: Array) -> Array:
    return jnp.sum(condition & mask).astype(ys.dtype) / count

  unit_axes = tuple(range(ys.ndim - 1))
  never_open = {n: jnp.all((a == 0) | ~mask, axis=unit_axes) for n, a in acts.items()}
  some = count > 0
  keep_plus_write = None if keep_write is None else _summary(keep_write[0] + keep_write[1], valid)
  flat = (T, math.prod(batch_shape))  # not (T, -1): T may be 0
  sequences = jnp.sum(valid.reshape(flat), axis=1)
  norms = jnp.where(valid, jnp.linalg.norm(ys, axis=-1), 0).reshape(flat)
  nothing = jnp.asarray(jnp.nan, ys.dtype)
  return GateStatistics(
    near_zero={n: fraction(a < eps) for n, a in acts.items()},
    near_one={n: fraction(a > 1 - eps) for n, a in acts.items()},
    dead={n: fraction(a == 0) for n, a in acts.items()},
    dead_units={
      n: jnp.where(some, jnp.mean(u.astype(ys.dtype)), nothing) for n, u in never_open.items()
    },
    mean={n: jnp.sum(jnp.where(mask, a, 0)) / count for n, a in acts.items()},
    keep_plus_write=keep_plus_write,
    hidden_norm=jnp.sum(norms, axis=1) / jnp.maximum(sequences, 1).astype(ys.dtype),
  )
