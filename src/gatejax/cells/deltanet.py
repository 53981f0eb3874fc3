r"""DeltaNet and Gated DeltaNet: the delta rule on a matrix state (Yang et al. 2024, 2025).

Per head, a key-by-value state :math:`S \in \mathbb{R}^{K \times V}` is written by the delta
rule: the value the state recalls for the key, :math:`S^\top k`, is moved a fraction
:math:`\beta` towards the new value, after a decay :math:`\alpha` (gated; 1 otherwise):

.. math::

  S_t = \alpha_t (I - \beta_t k_t k_t^\top) S_{t-1} + \beta_t k_t v_t^\top, \qquad
  y_t = S_t^\top q_t / \sqrt{K}

equal to flash-linear-attention 0.6.0's ``delta_rule_recurrence`` (ungated) and
``naive_recurrent_gated_delta_rule`` (gated) fed as its layers feed them (SPEC §3d). The step
is affine in the carry with a *dense* transition, so the cell offers three whole-sequence
forms beside ``step``:

* ``affine`` in the ``"matrix"`` form (:class:`gatejax.affine.Affine`): :math:`a_t = \alpha_t
  (I - \beta_t k_t k_t^\top)`, ``(T, *batch, NH, K, K)``, acting on the key axis of the carry
  ``(*batch, NH, K, V)``, and :math:`b_t = \beta_t k_t v_t^\top`; so ``impl="associative"``,
  :func:`gatejax.parallel_scan` (one exact solve) and the analysis' exact Jacobians apply;
* ``chunkwise``: the WY (UT-transform) chunk form of Yang et al. 2024, matmuls (and a
  triangular inverse by matmuls) within a chunk, the state update between chunks, memory
  :math:`O(T \cdot C)` for chunks of :math:`C` steps (see :func:`delta_net`);
* ``read``: the output from the new state and the input.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.affine import Affine
from gatejax.cells._kit import Cell

__all__ = ["DeltaNetGates", "DeltaNetOptions", "DeltaNetParams", "delta_net"]

#: fla's ``l2norm`` epsilon: ``x / sqrt(Σx² + 1e-6)``.
L2_EPS = 1e-6
#: Steps per chunk of the chunkwise form when the runner passes ``chunk_size=None`` (fla's
#: ``chunk_size`` of the gated rule's chunk kernels).
DEFAULT_CHUNK = 64
# dt of the gate bias, as mamba's (and fla's GatedDeltaNet's) ``dt_bias``.
_DT_MIN, _DT_MAX, _DT_FLOOR = 1e-3, 0.1, 1e-4
# exp(a_log) ~ U(0, 16] (fla: ``A.uniform_(0, 16)``; the endpoint 0 left out, see init).
_A_MAX = 16.0


class DeltaNetParams(NamedTuple):
  r"""DeltaNet parameters, exactly SPEC §3d's fields; every ``NH·X`` axis head-major.

  One type for both variants: the gated fields default to ``None``, and the ungated cell's
  parameters have them ``None`` (JAX treats ``None`` as an empty subtree: no leaves, so
  optimisers, checkpoints and ``jax.grad`` see only the five arrays).
  ``DeltaNetParams(w_q=…, w_k=…, w_v=…, w_beta=…, b_beta=…)`` is an ungated cell's
  parameters, and with ``w_a``, ``a_log`` and ``dt_bias`` added, a gated cell's; handing one
  to the other cell is a ``TypeError`` naming the structure.

  Attributes:
    w_q: query projection ``(I, NH·K)``.
    w_k: key projection ``(I, NH·K)``.
    w_v: value projection ``(I, H)`` (``V = H/NH`` per head).
    w_beta: write-strength projection ``(I, NH)``: :math:`\beta = \sigma(x w_\beta + b_\beta)`.
    b_beta: its bias ``(NH,)`` (fla's ``b_proj`` has none: 0 at init reproduces it).
    w_a: gated only: decay projection ``(I, NH)`` (fla's ``a_proj``).
    a_log: gated only: ``(NH,)``, :math:`\log A` (fla's ``A_log``).
    dt_bias: gated only: ``(NH,)``, the bias inside the softplus.
  """

  w_q: Float[Array, "input heads_key"]
  w_k: Float[Array, "input heads_key"]
  w_v: Float[Array, "input hidden"]
  w_beta: Float[Array, "input heads"]
  b_beta: Float[Array, " heads"]
  w_a: Float[Array, "input heads"] | None = None
  a_log: Float[Array, " heads"] | None = None
  dt_bias: Float[Array, " heads"] | None = None


class DeltaNetGates(NamedTuple):
  r"""The gates of one step, per head ``(*batch, NH)``.

  Attributes:
    beta: :math:`\sigma(x w_\beta + b_\beta) \in (0, 1)`, the write gate *before* the
      ``negative_eigenvalues`` doubling (the update uses :math:`2\beta` then), so its
      saturation statistics mean the same in both variants.
    alpha: the decay :math:`\alpha \in (0, 1]` (ones for the ungated cell).
  """

  beta: Array
  alpha: Array


class DeltaNetOptions(NamedTuple):
  """The options :func:`delta_net` was called with (``cell.options``)."""

  num_heads: int
  key_size: int | None
  gated: bool
  negative_eigenvalues: bool


class _Dims(NamedTuple):
  """Sizes and switches the functions below read (resolved from the options)."""

  heads: int
  key: int
  value: int
  gated: bool
  negative: bool


class _Inputs(NamedTuple):
  """Everything a step reads from ``x``: ``q``, ``k`` l2-normalised ``(…, NH, K)``, ``v``
  ``(…, NH, V)``, the gate ``sigma`` and the write strength ``beta`` ``(…, NH)``, and the
  log-decay ``log_alpha`` ``(…, NH)`` (``None`` ungated)."""

  q: Array
  k: Array
  v: Array
  sigma: Array
  beta: Array
  log_alpha: Array | None


# ---------------------------------------------------------------------------
# The equations
# ---------------------------------------------------------------------------


def _l2norm(x: Array) -> Array:
  """fla's ``l2norm``: ``x · rsqrt(Σx² + 1e-6)`` over the last axis.

  The epsilon keeps it finite, with a finite gradient (``I / sqrt(1e-6)``), at ``x = 0``:
  the zeros of a padded step."""
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + L2_EPS)


def _heads(a: Array, heads: int) -> Array:
  """A head-major last axis ``NH·X`` (entry ``h·X + d``) as ``(NH, X)``."""
  return a.reshape(*a.shape[:-1], heads, a.shape[-1] // heads)


def _row(a: Array, like: Array) -> Array:
  """``a`` (``(NH,)``) reshaped to broadcast against ``like`` (``(…, NH)``) explicitly."""
  return jnp.reshape(a, (1,) * (like.ndim - a.ndim) + a.shape)


def _inputs(dims: _Dims, params: DeltaNetParams, x: Array) -> _Inputs:
  q = _l2norm(_heads(x @ params.w_q, dims.heads))
  k = _l2norm(_heads(x @ params.w_k, dims.heads))
  v = _heads(x @ params.w_v, dims.heads)
  sigma = jax.nn.sigmoid(_kit.add_bias(x @ params.w_beta, params.b_beta))
  beta = 2 * sigma if dims.negative else sigma
  log_alpha = None
  if dims.gated:
    assert params.w_a is not None and params.a_log is not None and params.dt_bias is not None
    pre = _kit.add_bias(x @ params.w_a, params.dt_bias)
    log_alpha = -_row(jnp.exp(params.a_log), pre) * jax.nn.softplus(pre)
  return _Inputs(q, k, v, sigma, beta, log_alpha)


def _pack(dims: _Dims, inputs: _Inputs) -> Array:
  # Heads and features merged by explicit sizes: a -1 cannot be inferred from 0 steps.
  merge = lambda a: a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])
  parts = [merge(inputs.q), merge(inputs.k), merge(inputs.v), inputs.sigma]
  if inputs.log_alpha is not None:
    parts.append(inputs.log_alpha)
  return jnp.concatenate(parts, axis=-1)


def _unpack(dims: _Dims, px: Array) -> _Inputs:
  nh, kk, vv = dims.heads, dims.key, dims.value
  ends = [nh * kk, 2 * nh * kk, 2 * nh * kk + nh * vv, 2 * nh * kk + nh * vv + nh]
  q, k, v, sigma, rest = jnp.split(px, ends, axis=-1)
  beta = 2 * sigma if dims.negative else sigma
  return _Inputs(
    _heads(q, nh), _heads(k, nh), _heads(v, nh), sigma, beta, rest if dims.gated else None
  )


def _read_out(dims: _Dims, q: Array, s: Array) -> Array:
  r""":math:`y = S^\top q / \sqrt{K}` per head, heads concatenated (head-major)."""
  y = jnp.einsum("...k,...kv->...v", q * (dims.key**-0.5), s)
  return y.reshape(*y.shape[:-2], dims.heads * dims.value)


def _update(dims: _Dims, s: Array, inputs: _Inputs) -> tuple[Array, Array]:
  r"""One step in fla's order: :math:`S \leftarrow \alpha S`, :math:`u = \beta (v - S^\top k)`,
  :math:`S \leftarrow S + k u^\top` (= :math:`\alpha (I - \beta k k^\top) S + \beta k v^\top`).

  Returns the new state and :math:`\alpha` (ones ungated)."""
  if inputs.log_alpha is not None:
    alpha = jnp.exp(inputs.log_alpha)
    s = s * alpha[..., None, None]
  else:
    alpha = jnp.ones_like(inputs.sigma)
  recalled = jnp.einsum("...k,...kv->...v", inputs.k, s)
  u = inputs.beta[..., None] * (inputs.v - recalled)
  return s + inputs.k[..., :, None] * u[..., None, :], alpha


# ---------------------------------------------------------------------------
# The chunkwise form (WY / UT transform)
# ---------------------------------------------------------------------------


def _lower(size: int, ndim: int, *, strict: bool) -> Array:
  """The ``(C, C)`` mask ``r ≥ j`` (``r > j`` if ``strict``), reshaped to rank ``ndim``."""
  mask = jnp.tril(jnp.ones((size, size), bool), -1 if strict else 0)
  return mask.reshape((1,) * (ndim - 2) + mask.shape)


def _chunked(a: Array, vector: bool, steps: int, size: int) -> Array:
  """Time-major ``(T, *batch, NH[, d])`` to ``(*batch, NH, N, C[, d])``, zero-padded to ``N·C``."""
  a = jnp.moveaxis(a, 0, -2 if vector else -1)
  axis = a.ndim - 2 if vector else a.ndim - 1
  pad = [(0, 0)] * a.ndim
  pad[axis] = (0, (-steps) % size)
  a = jnp.pad(a, pad)
  return a.reshape(*a.shape[:axis], -1, size, *a.shape[axis + 1 :])


def _unit_lower_inverse(a: Array) -> Array:
  """``(I + a)⁻¹`` for ``a`` strictly lower triangular ``(..., C, C)``, by matmuls only.

  Block doubling: the inverses of the diagonal blocks of size ``s`` give those of size
  ``2s`` as ``[[D₁, 0], [−D₂ L D₁, D₂]]`` (``L`` the block below the diagonal), the
  recursive triangular inversion, as stable as substitution. Not LAPACK's ``trsm``: under
  differentiation XLA:CPU runs the forward solve and its transpose at once, and on a pool of
  two threads each waits inside the FFI handler for batch work that no free thread takes
  (a hang, found by ``benchmarks/modern.py``; BENCHMARKS.md). ``C`` is padded to a power of
  two with the identity.
  """
  size = a.shape[-1]
  full = 1 << max(0, (size - 1).bit_length())
  lead = a.shape[:-2]
  m = jnp.broadcast_to(jnp.eye(size, dtype=a.dtype), a.shape) + a
  if full != size:
    pad = [(0, 0)] * len(lead) + [(0, full - size), (0, full - size)]
    extra = jnp.diag((jnp.arange(full) >= size).astype(a.dtype))
    m = jnp.pad(m, pad) + jnp.broadcast_to(extra, (*lead, full, full))
  blocks = jnp.ones((*lead, full, 1, 1), a.dtype)  # the inverses of the 1 × 1 diagonal blocks
  s = 1
  while s < full:
    n = full // (2 * s)
    pairs = m.reshape(*lead, n, 2 * s, n, 2 * s)
    diagonal = jnp.moveaxis(jnp.diagonal(pairs, axis1=-4, axis2=-2), -1, -3)  # (..., n, 2s, 2s)
    below = diagonal[..., s:, :s]
    first, second = blocks[..., 0::2, :, :], blocks[..., 1::2, :, :]
    corner = -(second @ below @ first)
    top = jnp.concatenate([first, jnp.zeros_like(first)], axis=-1)
    bottom = jnp.concatenate([corner, second], axis=-1)
    blocks = jnp.concatenate([top, bottom], axis=-2)
    s *= 2
  return blocks[..., 0, :size, :size]


def _chunkwise(
  dims: _Dims,
  params: DeltaNetParams,
  xs: Array,
  carry: Array,
  valid: Array | None,
  chunk_size: int | None,
) -> tuple[Array, Array]:
  steps = xs.shape[0]
  batch = xs.shape[1:-1]
  size = DEFAULT_CHUNK if chunk_size is None else chunk_size
  size = max(1, min(size, steps))
  if steps == 0:
    return carry, jnp.zeros((0, *batch, dims.heads * dims.value), carry.dtype)
  inputs = _inputs(dims, params, xs)
  beta, g = inputs.beta, inputs.log_alpha
  if valid is not None:
    # A padded step is the identity through the cell's own gates: β = 0 writes nothing and
    # α = 1 (log α = 0) keeps everything.
    hold = jnp.reshape(valid, (*valid.shape, 1))
    beta = jnp.where(hold, beta, jnp.zeros_like(beta))
    g = None if g is None else jnp.where(hold, g, jnp.zeros_like(g))
  q = _chunked(inputs.q * (dims.key**-0.5), True, steps, size)  # (*B, NH, N, C, K)
  k = _chunked(inputs.k, True, steps, size)
  v = _chunked(inputs.v, True, steps, size)  # (*B, NH, N, C, V)
  beta = _chunked(beta, False, steps, size)  # (*B, NH, N, C); padding: β = 0
  rank = q.ndim
  lower = _lower(size, rank, strict=False)
  strict = _lower(size, rank, strict=True)
  if g is not None:
    g = _chunked(g, False, steps, size)  # padding: log α = 0
    # seg[r, j] = Σ_{j<i≤r} g_i, a cumulative sum of a masked copy (as Mamba-2's segsum)
    # rather than a difference of cumulative sums, which loses digits when the log-decay
    # is large; 0 above the diagonal, so exp never overflows.
    seg = jnp.cumsum(jnp.where(strict, g[..., :, None], jnp.zeros_like(g[..., :, None])), axis=-2)
    decay = jnp.where(lower, jnp.exp(seg), jnp.zeros_like(seg))  # e^{γ_r − γ_j}, r ≥ j
    gamma = jnp.exp(jnp.cumsum(g, axis=-1))  # e^{γ_r}: chunk start to r
    tail = jnp.exp(seg[..., -1, :])  # e^{γ_C − γ_j}: after j to chunk end
    total = gamma[..., -1]  # e^{γ_C}
  else:
    decay = jnp.broadcast_to(lower, (*q.shape[:-1], size)).astype(q.dtype)
    gamma = tail = total = None
  kk = k @ jnp.swapaxes(k, -1, -2)
  # (I + A) U = diag(β) V − diag(β e^γ) K S_0, A[r, j] = β_r e^{γ_r − γ_j} k_rᵀk_j (r > j).
  a = jnp.where(strict, beta[..., :, None] * kk * decay, jnp.zeros_like(kk))
  k_start = k if gamma is None else k * gamma[..., None]
  rhs = jnp.concatenate([beta[..., None] * v, beta[..., None] * k_start], axis=-1)
  solved = _unit_lower_inverse(a) @ rhs
  w_v, w_k = solved[..., : dims.value], solved[..., dims.value :]
  attend = (q @ jnp.swapaxes(k, -1, -2)) * decay  # (q_r·k_j) e^{γ_r − γ_j}, r ≥ j
  q_start = q if gamma is None else q * gamma[..., None]
  k_end = k if tail is None else k * tail[..., None]

  def chunk(s: Array, parts: tuple[Array, ...]) -> tuple[Array, Array]:
    w_v, w_k, attend, q_start, k_end, *total = parts
    u = w_v - w_k @ s  # the values each step writes, given the chunk's initial state
    o = q_start @ s + attend @ u
    kept = s * total[0][..., None, None] if total else s
    return kept + jnp.swapaxes(k_end, -1, -2) @ u, o

  axis = rank - 3  # the chunk axis N of (*B, NH, N, C, ·)
  parts = (w_v, w_k, attend, q_start, k_end) + (() if total is None else (total,))
  scanned = tuple(jnp.moveaxis(p, axis, 0) for p in parts)
  carry, outs = jax.lax.scan(chunk, carry, scanned)  # outs (N, *B, NH, C, V)
  outs = jnp.moveaxis(outs, -2, 1)  # (N, C, *B, NH, V)
  outs = outs.reshape(-1, *batch, dims.heads * dims.value)
  return carry, outs[:steps]


def _check_chunkwise(
  dims: _Dims, xs: Any, carry: Any, valid: Any, chunk_size: Any, name: str
) -> None:
  if jnp.ndim(xs) < 2:
    raise ValueError(
      f"xs must have shape (time, *batch, input_size) for {name}, got {jnp.shape(xs)}"
    )
  steps, batch = jnp.shape(xs)[0], tuple(jnp.shape(xs)[1:-1])
  want = (*batch, dims.heads, dims.key, dims.value)
  if tuple(jnp.shape(carry)) != want:
    raise ValueError(f"carry must have shape {want} for {name}, got {tuple(jnp.shape(carry))}")
  if valid is not None:
    if tuple(jnp.shape(valid)) != (steps, *batch):
      raise ValueError(
        f"valid must have shape (time, *batch) = {(steps, *batch)} for {name}, "
        f"got {tuple(jnp.shape(valid))}"
      )
    if jnp.result_type(valid) != jnp.bool_:
      raise TypeError(f"valid must be a bool array, got {jnp.result_type(valid)}")
  if chunk_size is not None:
    _kit.check_positive_int("chunk_size", chunk_size)


def _dims(hidden_size: int, options: DeltaNetOptions) -> _Dims:
  value = hidden_size // options.num_heads
  key = value if options.key_size is None else options.key_size
  return _Dims(options.num_heads, key, value, options.gated, options.negative_eigenvalues)


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def _torch_linear(key: PRNGKeyArray, shape: tuple[int, int], dtype: DTypeLike) -> Array:
  """torch ``nn.Linear``'s default weight, ``U(±1/sqrt(fan_in))``, as ``(fan_in, fan_out)``."""
  bound = 1.0 / math.sqrt(shape[0])
  draw = _kit.draw_dtype(dtype)
  return jax.random.uniform(key, shape, draw, -bound, bound).astype(dtype)


def _dt_bias(key: PRNGKeyArray, heads: int, dtype: DTypeLike) -> Array:
  """mamba's ``inv_dt``: ``softplus⁻¹(dt)``, ``log dt ~ U(log 1e-3, log 0.1)``, dt ≥ 1e-4."""
  draw = _kit.draw_dtype(dtype)
  log_dt = jax.random.uniform(key, (heads,), draw, math.log(_DT_MIN), math.log(_DT_MAX))
  dt = jnp.maximum(jnp.exp(log_dt), _DT_FLOOR)
  return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)


def _a_log(key: PRNGKeyArray, heads: int, dtype: DTypeLike) -> Array:
  """``log A`` with ``A ~ U(0, 16]``: ``16·(1 − u)``, ``u ~ U[0, 1)``, so never ``log 0``."""
  u = jax.random.uniform(key, (heads,), _kit.draw_dtype(dtype))
  return jnp.log(_A_MAX * (1 - u)).astype(dtype)


# ---------------------------------------------------------------------------
# The factory
# ---------------------------------------------------------------------------


def _check_flag(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise TypeError(f"{name} must be a bool, got {value!r}")


@_kit.memoized
def delta_net(
  hidden_size: int,
  *,
  num_heads: int = 1,
  key_size: int | None = None,
  gated: bool = True,
  negative_eigenvalues: bool = False,
) -> Cell:
  r"""(Gated) DeltaNet (Yang et al. 2024; Gated: Yang, Kautz & Hatamizadeh 2025).

  Per head :math:`h` (``NH`` heads, keys of size :math:`K`, values of size :math:`V = H/NH`):

  .. math::

    q_t &= \mathrm{l2norm}(x_t W_q), \quad k_t = \mathrm{l2norm}(x_t W_k), \quad
      v_t = x_t W_v, \qquad \mathrm{l2norm}(z) = z / \sqrt{\textstyle\sum z^2 + 10^{-6}} \\
    \beta_t &= \sigma(x_t w_\beta + b_\beta) \quad (\texttt{negative\_eigenvalues}: 2\beta_t) \\
    \alpha_t &= \exp\!\big(-e^{a_{\log}} \operatorname{softplus}(x_t w_a + dt_{bias})\big)
      \quad (\text{ungated: } \alpha_t = 1) \\
    S_t &= \alpha_t (I - \beta_t k_t k_t^\top) S_{t-1} + \beta_t k_t v_t^\top, \qquad
    y_t = S_t^\top q_t / \sqrt{K}

  with the heads of :math:`y_t` concatenated (head-major: entry :math:`h V + d`), as
  flash-linear-attention 0.6.0's ``delta_rule_recurrence`` (ungated) and
  ``naive_recurrent_gated_delta_rule`` with ``naive_gdn_gate`` (gated), with q and k
  l2-normalised as fla's kernels do (``use_qk_l2norm_in_kernel``) and β as its layers
  compute it (``b_proj(x).sigmoid()``, ``allow_neg_eigval``: ``β * 2``). The carry is
  ``s (*batch, NH, K, V)``, key by value, fla's state layout.

  **The l2norm's epsilon.** :math:`10^{-6}` inside the root (fla's ``l2norm``) keeps q and k
  finite, and their gradients finite (:math:`I/\sqrt{10^{-6}}`), at the zero input of a
  padded step; it also makes :math:`\lVert k \rVert` slightly below 1
  (:math:`\lVert k\rVert^2 = 1 - 10^{-6}/(\sum z^2 + 10^{-6})`).

  **Eigenvalues.** With :math:`\lVert k \rVert = 1`, :math:`I - \beta k k^\top` has the
  eigenvalue 1 (multiplicity :math:`K - 1`, the directions orthogonal to k) and
  :math:`1 - \beta` along k: in :math:`(0, 1)` for :math:`\beta = \sigma(\cdot)`, and in
  :math:`(-1, 1)` with ``negative_eigenvalues`` (Grazzi et al., ICLR 2025), the state-tracking
  range. So with one fixed unit key the Lyapunov exponents of the state are 0 (multiplicity
  :math:`(K-1)V`) and :math:`\mathrm{mean}_t \log|1 - \beta_t|` (multiplicity :math:`V`),
  each plus :math:`\mathrm{mean}_t \log \alpha_t` gated.

  **Fast paths.** ``cell.affine`` gives :math:`a_t = \alpha_t (I - \beta_t k_t k_t^\top)`
  (``(T, *batch, NH, K, K)``, acting on the carry's key axis) and :math:`b_t = \beta_t k_t
  v_t^\top`. ``cell.chunkwise(params, xs, carry, valid, chunk_size)`` is the WY form (Yang
  et al. 2024; fla ``delta_rule_chunkwise`` and ``naive_chunk_gated_delta_rule``).
  Within a chunk of :math:`C` steps from the state :math:`S_0`, with the cumulative
  log-decay :math:`\gamma_r = \sum_{i \le r} \log \alpha_i` (0 ungated), every step's
  write :math:`u_r = \beta_r (v_r - \alpha_r S_{r-1}^\top k_r)` solves one unit lower
  triangular system,

  .. math::

    (I + A)\, U = \mathrm{diag}(\beta) V - \mathrm{diag}(\beta e^{\gamma}) K S_0, \qquad
    A_{rj} = \beta_r e^{\gamma_r - \gamma_j} k_r^\top k_j \ (r > j),

  (the inverse by block doubling, matmuls only, applied to the two right-hand sides at once,
  before the chunks run), and then

  .. math::

    Y = \mathrm{diag}(e^{\gamma}) Q S_0 + (Q K^\top \odot D)\, U, \qquad
    S_C = e^{\gamma_C} S_0 + (K \odot e^{\gamma_C - \gamma})^\top U,

  with :math:`D_{rj} = e^{\gamma_r - \gamma_j}` for :math:`r \ge j` and 0 above: matmuls
  within a chunk and a ``lax.scan`` over chunks, memory :math:`O(T \cdot C)`, never
  :math:`O(T^2)`. Every exponent is :math:`\le 0`, so nothing overflows. A step where
  ``valid`` is False gets :math:`\beta = 0` and :math:`\alpha = 1`: it writes nothing and
  keeps everything, decay included (so padding cannot corrupt the state, the bug of
  flash-linear-attention issue 1272). ``time`` need not be a multiple of ``chunk_size``
  (the last chunk is padded that way).

  **Initialisation.** The gated decay as fla's ``GatedDeltaNet``: :math:`e^{a_{\log}} \sim
  U(0, 16]` (fla draws ``U(0, 16)``; drawing :math:`16(1 - u)` leaves out the endpoint 0,
  whose log is :math:`-\infty`), ``dt_bias`` as S6's (mamba's): :math:`\mathrm{softplus}^{-1}
  (dt)` with :math:`\log dt \sim U(\log 10^{-3}, \log 0.1)`. SPEC leaves the projections
  open; they are the official layers' own default, torch ``nn.Linear``'s
  :math:`U(\pm 1/\sqrt{I})` for ``w_q, w_k, w_v, w_beta, w_a`` (fla's layers build their
  projections so, without bias; a model's ``_init_weights`` may redraw them later), which
  keeps the pre-activations of unit-scale inputs O(1) (variance :math:`1/3`), so
  :math:`\beta` and :math:`\alpha` start spread rather than at a constant. ``b_beta = 0``
  (fla's ``b_proj`` has no bias).

  Args:
    hidden_size: ``H``, the size of ``y`` (``NH`` heads of ``V = H/NH`` values).
    num_heads: ``NH``, which must divide ``hidden_size``.
    key_size: ``K``, keys and queries per head; ``None`` means ``H/NH``.
    gated: Gated DeltaNet (the decay :math:`\alpha_t`) or DeltaNet (:math:`\alpha_t = 1`).
    negative_eigenvalues: :math:`\beta \in (0, 2)`, so :math:`1 - \beta \in (-1, 1)`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`DeltaNetParams`, an array carry ``s``,
    :class:`DeltaNetGates`, ``read``, ``affine`` (matrix form) and ``chunkwise``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.delta_net(8, num_heads=2)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.w_q.shape, params.a_log.shape, cell.initial_carry((5,)).shape
    ((3, 8), (2,), (5, 2, 4, 4))
    >>> xs = jax.random.normal(jax.random.key(1), (10, 5, 3))
    >>> carry, ys = gj.scan(cell, params, xs)
    >>> ys.shape
    (10, 5, 8)

    The transition along the key has eigenvalue :math:`\alpha (1 - \beta \lVert k \rVert^2)`,
    the :math:`K - 1` others :math:`\alpha`:

    >>> aff = cell.affine(params, xs)
    >>> aff.a.shape, aff.form
    ((10, 5, 2, 4, 4), 'matrix')
    >>> eig = jnp.linalg.eigvalsh(aff.a[0, 0, 0])  # step 0, sequence 0, head 0
    >>> bool(jnp.allclose(eig[1:], eig[3]) and eig[0] < eig[3] <= 1)
    True

    The chunkwise form equals the step loop, with padding and a length that is not a
    multiple of the chunk:

    >>> lengths = jnp.array([10, 7, 3, 0, 9])
    >>> valid = jnp.arange(10)[:, None] < lengths[None, :]
    >>> zeroed = jnp.where(valid[..., None], xs, 0.0)  # the runner zeroes the padding
    >>> s_c, ys_c = cell.chunkwise(params, zeroed, cell.initial_carry((5,)), valid, 4)
    >>> s, ys = gj.scan(cell, params, xs, lengths=lengths)
    >>> ys_c = jnp.where(valid[..., None], ys_c, 0.0)
    >>> bool(jnp.allclose(s_c, s, atol=1e-5) and jnp.allclose(ys_c, ys, atol=1e-5))
    True
  """
  _kit.check_hidden_size(hidden_size)
  value = _kit.check_heads(hidden_size, num_heads)
  if key_size is not None:
    _kit.check_positive_int("key_size", key_size)
  _check_flag("gated", gated)
  _check_flag("negative_eigenvalues", negative_eigenvalues)
  options = DeltaNetOptions(
    num_heads=num_heads, key_size=key_size, gated=gated, negative_eigenvalues=negative_eigenvalues
  )
  dims = _dims(hidden_size, options)
  nh, kk = dims.heads, dims.key
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> DeltaNetParams:
    _kit.check_input_size(input_size)
    I = input_size
    k_q, k_k, k_v, k_beta, k_a, k_alog, k_dt = jax.random.split(key, 7)
    params = DeltaNetParams(
      w_q=_torch_linear(k_q, (I, nh * kk), dtype),
      w_k=_torch_linear(k_k, (I, nh * kk), dtype),
      w_v=_torch_linear(k_v, (I, H), dtype),
      w_beta=_torch_linear(k_beta, (I, nh), dtype),
      b_beta=jnp.zeros((nh,), dtype),
    )
    if not gated:
      return params
    return params._replace(
      w_a=_torch_linear(k_a, (I, nh), dtype),
      a_log=_a_log(k_alog, nh, dtype),
      dt_bias=_dt_bias(k_dt, nh, dtype),
    )

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> Array:
    return jnp.zeros((*tuple(batch_shape), nh, kk, value), dtype)

  def project(params: DeltaNetParams, x: Array) -> Array:
    return _pack(dims, _inputs(dims, params, x))

  def recur(params: DeltaNetParams, s: Array, px: Array) -> tuple[Array, Array, DeltaNetGates]:
    inputs = _unpack(dims, px)
    s, alpha = _update(dims, s, inputs)
    return s, _read_out(dims, inputs.q, s), DeltaNetGates(beta=inputs.sigma, alpha=alpha)

  def read(params: DeltaNetParams, s: Array, x: Array) -> Array:
    return _read_out(dims, _l2norm(_heads(x @ params.w_q, nh)), s)

  def affine(params: DeltaNetParams, xs: Array) -> Affine:
    inputs = _inputs(dims, params, xs)
    beta, k = inputs.beta[..., None, None], inputs.k
    eye = jnp.broadcast_to(jnp.eye(kk, dtype=k.dtype), (*k.shape, kk))
    a = eye - beta * k[..., :, None] * k[..., None, :]
    if inputs.log_alpha is not None:
      a = jnp.exp(inputs.log_alpha)[..., None, None] * a
    return Affine(a=a, b=beta * k[..., :, None] * inputs.v[..., None, :], form="matrix")

  name = f"gj.delta_net({H})"

  def chunkwise(
    params: DeltaNetParams,
    xs: Float[Array, "time *batch input"],
    carry: Float[Array, "*batch heads key value"],
    valid: Array | None = None,
    chunk_size: int | None = None,
  ) -> tuple[Array, Float[Array, "time *batch hidden"]]:
    # The whole sequence in the WY chunk form (see the docstring); equal to the step loop.
    # valid False holds the carry (β = 0, α = 1 there); chunk_size None is DEFAULT_CHUNK.
    _check_chunkwise(dims, xs, carry, valid, chunk_size, name)
    with jax.named_scope("gatejax.delta_net.chunkwise"):
      return _chunkwise(dims, params, jnp.asarray(xs), carry, valid, chunk_size)

  return _kit.build(
    "delta_net",
    H,
    title=DISPLAY_NAMES["delta_net"],
    init=init,
    project=project,
    recur=recur,
    options=options,
    initial_carry=initial_carry,
    gate_names=("beta", "alpha") if gated else ("beta",),
    affine=affine,
    read=read,
    chunkwise=chunkwise,
  )


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"delta_net": "DeltaNet"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (delta_net,)
