r"""Norms of the Jacobians :math:`\partial c_T / \partial c_k`: how far back a carry reaches.

One reverse sweep pulls the ``D`` rows of :math:`\partial c_T / \partial c_{t+1}` back
through each step at once (``D`` the flattened carry size), renormalised by exact powers of
two so that a product of many Jacobians neither underflows nor overflows; a cell affine in
its carry has its Jacobians read from its coefficients (:func:`gatejax.affine.suffix_products`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

import gatejax.analysis._norms as _norms
import gatejax.analysis._sweep as _sweep
import gatejax.run.flat as flat
import gatejax.run.fused as fused
import gatejax.run.loop as loop
import gatejax.run.prepare as prepare
from gatejax import affine, protocol
from gatejax._jit import bounded_jit
from gatejax.run.options import ScanOptions

__all__ = ["jacobian_norms"]

Params = Any
Carry = Any
JacobianNorms = Float[Array, "time *batch"]


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
    return _norms.scaled_norm([matrices], axes=(-2, -1))
  dtype = matrices.dtype
  work = matrices.astype(jnp.float32) if jnp.finfo(dtype).bits < 32 else matrices
  scale = _norms.magnitude([work], (-2, -1))
  e = _norms.exponent(scale)
  finite = jnp.isfinite(scale)[..., None, None]
  unit = jnp.where(finite, _norms.ldexp(work, -e, (-2, -1)), jnp.zeros_like(work))
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
  final, before, _ = _sweep.forward(parts, params, xs, carry, lengths, options.unroll)
  # The real Jacobian: a complex leaf as its real and imaginary parts (gatejax.run.flat).
  template, final, before = final, flat.to_real(final), flat.to_real(before)
  rows, _ = _identity_cotangents(final, batch_ndim)
  masked = loop.masked_step(_sweep.step_fn(parts, params), lengths)

  def step(c: Carry, x: Array, t: Array) -> tuple[Carry, Array]:
    new, y = masked(flat.from_real(c, template), x, t)
    return flat.to_real(new), y

  exponent = jnp.zeros(xs.shape[1:-1], jnp.int32)

  def body(acc: tuple[Carry, Array], inputs: tuple[Array, Array, Carry]) -> tuple[Any, Array]:
    rows, exponent = acc
    t, x, c = inputs
    # One linearisation of the step, pulled back along all D rows of ∂c_T/∂c_{t+1} at once.
    _, vjp = jax.vjp(lambda c: step(c, x, t)[0], c)
    (rows,) = jax.vmap(vjp)(rows)
    # The rows carry ∂c_T/∂c_t / 2^exponent: renormalised (exactly, by powers of two) at
    # every step, so a product of T Jacobians neither underflows nor overflows on its way.
    e = _norms.exponent(_row_magnitude(rows, batch_ndim))
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
  return _norms.magnitude(per_batch, (-1,))


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
      return _norms.scaled_norm(copies, axes=(-1,))
    return jnp.max(jnp.concatenate(flat, axis=-1), axis=-1)
  # Matrix form: the Jacobian of a carry leaf (*batch, *heads, K, *rest) is P ⊗ I_rest per
  # head, block-diagonal over heads: spectral norm the largest over heads, Frobenius norm
  # sqrt(Σ_heads |rest|·‖P_h‖²_F).
  norms = []
  for p, c in zip(leaves, jax.tree.leaves(carry), strict=True):
    rest = math.prod(c.shape[p.ndim - 2 :])
    blocks = p.reshape((*p.shape[:lead], -1, *p.shape[-2:]))  # (T, *batch, heads, K, K)
    if ord == "fro":
      norms.append(_norms.scaled_norm([blocks * rest**0.5], axes=(-3, -2, -1)))
    else:
      work = blocks.astype(jnp.float32) if jnp.finfo(blocks.dtype).bits < 32 else blocks
      norms.append(
        jnp.max(jnp.linalg.norm(work, ord=2, axis=(-2, -1)), axis=-1).astype(blocks.dtype)
      )
  stacked = jnp.stack(norms, axis=-1)
  return _norms.scaled_norm([stacked], axes=(-1,)) if ord == "fro" else jnp.max(stacked, axis=-1)


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
  xs, carry, lengths, options = _sweep.prepared(
    cell, params, xs, carry, lengths, options, "jacobian_norms"
  )
  if math.prod(xs.shape[1:-1]) == 0:  # no sequence
    return jnp.zeros(xs.shape[:-1], jnp.result_type(*jax.tree.leaves(carry)))
  return _jacobian_sweep(cell, params, xs, carry, lengths, ord, options)
