r"""xLSTM's cells (Beck et al. 2024): sLSTM and mLSTM, exponential input gates with a stabiliser.

Both cells have an exponential input gate :math:`e^{\tilde\imath}` beside a sigmoid forget gate,
and store their state in a *stabilised frame*: the carry holds
:math:`(c, n) = (\tilde c, \tilde n)\, e^{-m}` where :math:`\tilde c, \tilde n` is the
unstabilised state (which overflows in float32 after a few large input gates) and :math:`m` a
running log-scale. Their outputs are ratios of :math:`c` and :math:`n`, so (with ``eps=0`` for
the mLSTM) they do not depend on the frame: the frame is a *gauge* of the carry.

===============  ===========================  ==========================  ===========================
cell             state per head               output                      official reference step
===============  ===========================  ==========================  ===========================
:func:`slstm`    scalars ``y, c, n, m``       ``y`` (a carry leaf)        xlstm 2.0.6
                 per unit; recurrent ``R y``                              ``slstm_forward_pointwise``
:func:`mlstm`    matrix ``C (K, V)``,         ``read``:                   mlstm-kernels 2.0.6
                 ``n (K,)``, ``m``            :math:`q^\top C/\ldots`     ``mlstm_recurrent_step__
                                                                          native_fw``
===============  ===========================  ==========================  ===========================

The mLSTM's gates read only the input, so its state is a linear recurrence (with a max-plus
stabiliser) and it offers a chunkwise-parallel whole-sequence form (``cell.chunkwise``, see
:func:`mlstm`), equal to the step loop.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.cells._kit import Cell
from gatejax.protocol import RecurSplit

__all__ = [
  "MLSTMGates",
  "MLSTMOptions",
  "MLSTMParams",
  "MLSTMState",
  "SLSTMGates",
  "SLSTMOptions",
  "SLSTMParams",
  "SLSTMState",
  "mlstm",
  "slstm",
]


def _small_init(key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
  """xlstm's ``small_init_init_``: :math:`N(0, 2 / (5 d))` with ``d`` the input width."""
  std = math.sqrt(2.0 / (5.0 * shape[0]))
  return (std * jax.random.normal(key, shape, _kit.draw_dtype(dtype))).astype(dtype)


def _heads(a: Array, num_heads: int) -> Array:
  """A head-major last axis ``NH·X`` (entry ``h·X + d``) as ``(NH, X)``."""
  return a.reshape(*a.shape[:-1], num_heads, a.shape[-1] // num_heads)


def _merge_heads(a: Array) -> Array:
  return a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])


def _overflow_cap(dtype: Any) -> float:
  """The largest exponent whose ``exp`` stays finite in ``dtype`` (with a margin of 1)."""
  return float(np.log(float(jnp.finfo(dtype).max))) - 1.0


# ---------------------------------------------------------------------------
# sLSTM
# ---------------------------------------------------------------------------


class SLSTMParams(NamedTuple):
  """sLSTM parameters (SPEC §3d), gate order ``i, f, z, o``, every gate's units head-major.

  ``w_x`` and ``b`` hold the four gates side by side (gate-major: column ``g·H + h·D + j``
  is gate ``g``, head ``h``, unit ``j``); ``r[h, k, g·D + j]`` reads unit ``k`` of head
  ``h``'s ``y`` into gate ``g`` unit ``j`` of head ``h`` (``D = H / NH``): the recurrent
  matrix is block diagonal over heads.
  """

  w_x: Float[Array, "input 4*hidden"]
  r: Float[Array, "heads head 4*head"]
  b: Float[Array, " 4*hidden"]


class SLSTMState(NamedTuple):
  """The sLSTM carry, each ``(*batch, hidden)``: output ``y``, cell ``c``, normaliser ``n``
  and stabiliser ``m`` (``c``, ``n`` are the unstabilised state times :math:`e^{-m}`)."""

  y: Array
  c: Array
  n: Array
  m: Array


class SLSTMGates(NamedTuple):
  """sLSTM activations of one step, in the stabilised frame: input ``i = exp(ĩ − m_t)``,
  forget ``f = exp(m_{t−1} + logσ(f̃) − m_t)`` (both in ``[0, 1]`` once ``n ≠ 0``), the
  candidate ``z = tanh(z̃)`` and the output gate ``o = σ(õ)``."""

  i: Array
  f: Array
  z: Array
  o: Array


class SLSTMOptions(NamedTuple):
  """The options :func:`slstm` was called with (``cell.options``)."""

  num_heads: int
  forget_bias: str | float


def _powerlaw_forget_bias(head_size: int) -> np.ndarray:
  """xlstm's ``powerlaw_blockdependent`` forget bias of one head: ``5 − 12·(k/(D−1))^0.3``."""
  if head_size == 1:  # upstream divides 0 by 0 here; SPEC says 5
    return np.array([5.0])
  return 5.0 - 12.0 * (np.arange(head_size) / (head_size - 1)) ** 0.3


def _slstm_keep_write(gates: SLSTMGates) -> tuple[Array, Array]:
  return gates.f, gates.i


@_kit.memoized
def slstm(hidden_size: int, *, num_heads: int = 4, forget_bias: str | float = "powerlaw") -> Cell:
  r"""sLSTM (Beck et al. 2024): scalar memory, exponential input gate, block-diagonal recurrence.

  .. math::

    [\tilde\imath, \tilde f, \tilde z, \tilde o] &= x_t W_x + \mathrm{blockdiag}_r(y_{t-1}) + b \\
    m_t &= \begin{cases} \tilde\imath & n_{t-1} = 0 \\
      \max(\tilde\imath,\; m_{t-1} + \log\sigma(\tilde f)) & \text{else} \end{cases} \\
    i'_t &= e^{\tilde\imath - m_t}, \qquad f'_t = e^{m_{t-1} + \log\sigma(\tilde f) - m_t} \\
    c_t &= f'_t \odot c_{t-1} + i'_t \odot \tanh(\tilde z), \qquad
    n_t = f'_t \odot n_{t-1} + i'_t \\
    y_t &= \sigma(\tilde o) \odot c_t / n_t

  equal to xlstm 2.0.6's vanilla ``slstm_forward_pointwise`` (the official reference). Carry :class:`SLSTMState` ``(y, c, n, m)``, each
  ``(*batch, H)``; the output is the carry's ``y``. Heads: ``NH`` blocks of ``D = H / NH``
  units; the recurrent matrix ``r (NH, D, 4D)`` mixes units only within a head.

  Decisions (SPEC §3d), each checked in the tests:

  * **The stabiliser.** :math:`(c, n, m)` stands for the unstabilised
    :math:`(\tilde c, \tilde n) = (c, n)\, e^{m}`, which follows
    :math:`\tilde c_t = \sigma(\tilde f)\tilde c_{t-1} + e^{\tilde\imath}\tanh\tilde z`;
    :math:`m_t` is the largest of the two log-weights, so :math:`i', f' \le 1` and
    :math:`n_t \ge 1` after the first step: nothing overflows and ``y`` needs no epsilon.
    The ``n = 0`` branch is taken **element by element** (as the CUDA kernel; the vanilla
    backend tests ``all(n == 0)`` over the whole batch): ``n = 0`` means an empty memory,
    whose frame carries no information. From the zero carry both agree.
  * **No** ``min(·, 1)`` **clamps** on :math:`i', f'` (the official code has them): they are
    no-ops except in the ``n = 0`` branch, where :math:`c = n = 0` make :math:`f'` irrelevant
    to the values, and where :math:`f' = \partial c_t / \partial c_{t-1}` is the true
    derivative in the stabilised coordinates (a clamp would change the Jacobian there, and a
    ``minimum`` at its tie would halve gradients). Only an overflow guard remains: the exponent
    of :math:`f'` is capped at :math:`\log(\text{max float}) - 1`, which binds only in the
    ``n = 0`` branch when :math:`m_{t-1} + \log\sigma(\tilde f) - \tilde\imath` exceeds ~88 in
    float32 (there :math:`f' \cdot 0` would otherwise be :math:`\infty \cdot 0`).
  * **Gradients** are autodiff through the max and the branch, as the official vanilla
    autograd (not the CUDA kernel, which treats :math:`m` as a constant): parameter
    gradients agree either way; gradients with respect to the carry's ``m`` do not.
  * **The gauge direction.** The step commutes with the change of frame
    :math:`(c, n, m) \to (c\,e^{-\delta}, n\,e^{-\delta}, m + \delta)` (``y`` unchanged)
    where the ``f`` branch of the max wins, and forgets it (maps it to zero) where the
    ``i`` branch wins. So the step Jacobian over the flattened carry has, per unit, the
    direction :math:`(0, -c, -n, 1)` with multiplier 1 or 0: Jacobian norms and Lyapunov
    exponents over the whole carry include this artefact of the frame; measure them on
    ``y`` (or on :math:`\tilde c, \tilde n` in float64) for statements about memory.
  * **Initialisation** (the official one): ``forget_bias="powerlaw"`` writes xlstm's
    ``powerlaw_blockdependent`` forget bias, per head :math:`b_f[k] = 5 - 12 (k / (D-1))^{0.3}`
    (:math:`D = 1`: 5; from :math:`\sigma = 0.993` down to :math:`0.0009` within a head), the
    other biases 0, ``r = 0`` (``recurrent_weight_init="zeros"``), and ``w_x`` (which the
    official cell does not have: the xlstm layer feeds it head-wise projections) as xlstm's
    ``small_init``, :math:`N(0, 2 / (5 I))` with ``I`` the input size. With ``r = 0`` the
    gates read only ``x`` until training moves ``r``.

  Args:
    hidden_size: ``H``, a multiple of ``num_heads``.
    num_heads: ``NH``, the number of blocks of the recurrent matrix.
    forget_bias: ``"powerlaw"`` (the official init) or a float written into every unit's
      forget bias.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`SLSTMParams`, an :class:`SLSTMState` carry,
    :class:`SLSTMGates` and a ``split`` at the recurrent matmul.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.slstm(8, num_heads=2)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.r.shape, [round(float(b), 3) for b in params.b[8:12]]   # forget bias, head 0
    ((2, 4, 16), [5.0, -3.631, -5.626, -7.0])
    >>> carry, ys = gj.scan(cell, params, jnp.ones((6, 2, 3)))
    >>> ys.shape, carry.m.shape, bool((carry.n >= 1).all())
    ((6, 2, 8), (2, 8), True)
  """
  _kit.check_hidden_size(hidden_size)
  D = _kit.check_heads(hidden_size, num_heads)
  if isinstance(forget_bias, str):
    if forget_bias != "powerlaw":
      raise ValueError(f'forget_bias must be "powerlaw" or a float, got {forget_bias!r}')
  else:
    _kit.check_number("forget_bias", forget_bias)
  H, NH = hidden_size, num_heads

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> SLSTMParams:
    _kit.check_input_size(input_size)
    if forget_bias == "powerlaw":
      b_f = np.tile(_powerlaw_forget_bias(D), NH)
    else:
      b_f = np.full(H, float(forget_bias))
    b = np.zeros(4 * H)
    b[H : 2 * H] = b_f
    return SLSTMParams(
      w_x=_small_init(key, (input_size, 4 * H), dtype),
      r=jnp.zeros((NH, D, 4 * D), dtype),
      b=jnp.asarray(b, dtype),
    )

  def initial_carry(
    batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32
  ) -> SLSTMState:
    zeros = jnp.zeros((*tuple(batch_shape), H), dtype)
    return SLSTMState(y=zeros, c=zeros, n=zeros, m=zeros)

  def project(params: SLSTMParams, x: Array) -> Array:
    return _kit.add_bias(x @ params.w_x, params.b)

  def hidden(carry: SLSTMState) -> Array:
    return carry.y

  def mix(params: SLSTMParams, y: Array) -> Array:
    lead = y.shape[:-1]
    ry = jnp.einsum("...hk,hkj->...hj", _heads(y, NH), params.r)  # (*batch, NH, 4D)
    # head-major (h, g, j) -> gate-major (g, h, j), the layout of w_x and b
    ry = jnp.swapaxes(ry.reshape(*lead, NH, 4, D), -3, -2)
    return ry.reshape(*lead, 4 * H)

  def combine(carry: SLSTMState, px: Array, hh: Array) -> tuple[SLSTMState, Array, SLSTMGates]:
    a_i, a_f, a_z, a_o = _kit.split(px + hh, 4)
    log_f = carry.m + jax.nn.log_sigmoid(a_f)
    m = jnp.where(carry.n == 0, a_i, jnp.maximum(a_i, log_f))
    i = jnp.exp(a_i - m)
    f = jnp.exp(jnp.minimum(log_f - m, _overflow_cap(log_f.dtype)))
    z, o = jnp.tanh(a_z), jax.nn.sigmoid(a_o)
    c = f * carry.c + i * z
    n = f * carry.n + i
    y = o * c / n
    return SLSTMState(y=y, c=c, n=n, m=m), y, SLSTMGates(i=i, f=f, z=z, o=o)

  split = RecurSplit(hidden=hidden, mix=mix, combine=combine)
  return _kit.build(
    "slstm",
    H,
    title=DISPLAY_NAMES["slstm"],
    init=init,
    initial_carry=initial_carry,
    project=project,
    recur=split.recur,
    options=SLSTMOptions(num_heads=num_heads, forget_bias=forget_bias),
    split=split,
    gate_names=("i", "f", "o"),
    keep_write=_slstm_keep_write,
    init_only=("forget_bias",),
  )


# ---------------------------------------------------------------------------
# mLSTM
# ---------------------------------------------------------------------------


class MLSTMParams(NamedTuple):
  """mLSTM parameters (SPEC §3d): query, key and value maps (head-major columns) and the
  per-head input and forget gates, :math:`\\tilde\\imath = x w_i + b_i`,
  :math:`\\tilde f = x w_f + b_f`."""

  w_q: Float[Array, "input heads*key"]
  w_k: Float[Array, "input heads*key"]
  w_v: Float[Array, "input hidden"]
  w_i: Float[Array, "input heads"]
  w_f: Float[Array, "input heads"]
  b_i: Float[Array, " heads"]
  b_f: Float[Array, " heads"]


class MLSTMState(NamedTuple):
  """The mLSTM carry: matrix memory ``c (*batch, NH, K, V)`` (key by value), normaliser
  ``n (*batch, NH, K)`` and stabiliser ``m (*batch, NH)`` (``V = H / NH``)."""

  c: Array
  n: Array
  m: Array


class MLSTMGates(NamedTuple):
  """mLSTM gates of one step per head, ``(*batch, NH)``, in the stabilised frame (in
  ``[0, 1]``): input ``i = exp(ĩ − m_t)`` and forget ``f = exp(logσ(f̃) + m_{t−1} − m_t)``."""

  i: Array
  f: Array


class MLSTMOptions(NamedTuple):
  """The options :func:`mlstm` was called with (``cell.options``)."""

  num_heads: int
  key_size: int | None
  eps: float


class _Sizes(NamedTuple):
  hidden: int
  heads: int
  key: int
  value: int
  eps: float


def _mlstm_project(params: MLSTMParams, x: Array) -> Array:
  """``[x w_q | x w_k | x w_v | x w_i + b_i | x w_f + b_f]``: everything the step reads of x."""
  return jnp.concatenate(
    [
      x @ params.w_q,
      x @ params.w_k,
      x @ params.w_v,
      _kit.add_bias(x @ params.w_i, params.b_i),
      _kit.add_bias(x @ params.w_f, params.b_f),
    ],
    axis=-1,
  )


def _mlstm_unpack(s: _Sizes, px: Array) -> tuple[Array, Array, Array, Array, Array]:
  """``px`` as ``q`` (scaled by ``1/√K``), ``k (…, NH, K)``, ``v (…, NH, V)``, ``ĩ``, ``f̃ (…, NH)``."""
  qk = s.heads * s.key
  cuts = np.cumsum([qk, qk, s.hidden, s.heads])
  q, k, v, a_i, a_f = jnp.split(px, cuts, axis=-1)
  q = _heads(q, s.heads) * (s.key**-0.5)
  return q, _heads(k, s.heads), _heads(v, s.heads), a_i, a_f


def _mlstm_readout(s: _Sizes, q: Array, state: MLSTMState) -> Array:
  """:math:`q^\\top C / (\\max(|q^\\top n|, e^{-m}) + \\epsilon)`, heads concatenated."""
  num = jnp.einsum("...k,...kv->...v", q, state.c)
  qn = jnp.einsum("...k,...k->...", q, state.n)
  den = jnp.maximum(jnp.abs(qn), jnp.exp(-state.m)) + s.eps
  return _merge_heads(num / den[..., None])


def _mlstm_recur(
  s: _Sizes, params: MLSTMParams, carry: MLSTMState, px: Array
) -> tuple[MLSTMState, Array, MLSTMGates]:
  q, k, v, a_i, a_f = _mlstm_unpack(s, px)
  log_f = jax.nn.log_sigmoid(a_f)
  m = jnp.maximum(log_f + carry.m, a_i)
  f = jnp.exp(log_f + carry.m - m)
  i = jnp.exp(a_i - m)
  c = f[..., None, None] * carry.c + i[..., None, None] * (k[..., :, None] * v[..., None, :])
  n = f[..., None] * carry.n + i[..., None] * k
  new = MLSTMState(c=c, n=n, m=m)
  return new, _mlstm_readout(s, q, new), MLSTMGates(i=i, f=f)


def _mlstm_read(s: _Sizes, params: MLSTMParams, carry: MLSTMState, x: Array) -> Array:
  q = _heads(x @ params.w_q, s.heads) * (s.key**-0.5)
  return _mlstm_readout(s, q, carry)


def _chunks(a: Array, length: int, steps: int, fill: float, feature_axes: int) -> Array:
  """``a (T, *batch, NH, *features)`` padded with ``fill`` to ``steps`` and cut into chunks,
  as ``(chunks, *batch, NH, length, *features)``."""
  pad = [(0, steps - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
  a = jnp.pad(a, pad, constant_values=fill)
  a = a.reshape(steps // length, length, *a.shape[1:])
  return jnp.moveaxis(a, 1, a.ndim - 1 - feature_axes)


#: Steps per chunk of :func:`mlstm`'s ``chunkwise`` when the runner passes ``chunk_size=None``.
DEFAULT_CHUNK = 64


def _mlstm_chunkwise(
  s: _Sizes,
  params: MLSTMParams,
  xs: Float[Array, "time *batch input"],
  carry: MLSTMState,
  valid: Array | None,
  chunk_size: int | None,
) -> tuple[MLSTMState, Float[Array, "time *batch hidden"]]:
  """The chunkwise-parallel mLSTM over a whole sequence; see :func:`mlstm`."""
  if chunk_size is None:
    chunk_size = DEFAULT_CHUNK
  _kit.check_positive_int("chunk_size", chunk_size)
  xs = jnp.asarray(xs)
  if xs.ndim < 2:
    raise ValueError(f"xs must have shape (time, *batch, input_size), got {xs.shape}")
  T = xs.shape[0]
  if T == 0:
    return carry, jnp.zeros((0, *xs.shape[1:-1], s.hidden), xs.dtype)
  L = min(chunk_size, T)
  steps = -(-T // L) * L

  if valid is not None:
    keep = jnp.asarray(valid, bool)[..., None]  # (T, *batch, 1)
    xs = jnp.where(keep, xs, 0.0)  # the runner has done it; a direct call may not have
  q, k, v, a_i, a_f = _mlstm_unpack(s, _mlstm_project(params, xs))
  log_f = jax.nn.log_sigmoid(a_f)
  if valid is not None:
    # A padded step holds the carry through the cell's own gates: forget 1, no write.
    log_f = jnp.where(keep, log_f, 0.0)
    a_i = jnp.where(keep, a_i, -jnp.inf)
    k, v = (jnp.where(keep[..., None], a, 0.0) for a in (k, v))
  # (chunks, *batch, NH, L[, K or V]); the tail past T is padding (forget 1, no write)
  q, k, v = (_chunks(a, L, steps, 0.0, 1) for a in (q, k, v))
  log_f, a_i = _chunks(log_f, L, steps, 0.0, 0), _chunks(a_i, L, steps, -jnp.inf, 0)

  # Within a chunk, F_t = Σ_{r≤t} logσ(f̃_r) and the step loop's own stabiliser in closed
  # form: m_t = F_t + max(m_0, max_{s≤t} (ĩ_s − F_s)) (the max-plus recurrence unrolled).
  F = jnp.cumsum(log_f, axis=-1)
  g = a_i - F
  g_max = jax.lax.cummax(g, axis=g.ndim - 1)
  F_end, g_end = F[..., -1], g_max[..., -1]
  # A frame for the chunk's own writes; any finite value gives the same state, so its
  # gradient is zero and it is held constant (a chunk of padding alone has g_end = -inf).
  frame = jax.lax.stop_gradient(jnp.where(jnp.isfinite(g_end), g_end, 0.0))
  w = jnp.exp(g - frame[..., None])  # (chunks, *batch, NH, L), <= 1
  kv = jnp.einsum("...s,...sk,...sv->...kv", w, k, v)
  k_sum = jnp.einsum("...s,...sk->...k", w, k)

  def between(state: MLSTMState, chunk: tuple[Array, ...]) -> tuple[MLSTMState, MLSTMState]:
    F_end, g_end, frame, kv, k_sum = chunk
    m = F_end + jnp.maximum(state.m, g_end)
    decay = jnp.exp(F_end + state.m - m)
    scale = jnp.exp(frame + F_end - m)
    new = MLSTMState(
      c=decay[..., None, None] * state.c + scale[..., None, None] * kv,
      n=decay[..., None] * state.n + scale[..., None] * k_sum,
      m=m,
    )
    return new, state

  final, starts = jax.lax.scan(between, carry, (F_end, g_end, frame, kv, k_sum))

  # Within each chunk (all chunks at once): the start state decayed, plus an (L × L)
  # decay-masked attention over the chunk's own steps, all in the step loop's frame m_t.
  m = F + jnp.maximum(starts.m[..., None], g_max)  # (chunks, *batch, NH, L)
  inter = jnp.exp(F + starts.m[..., None] - m)
  num = inter[..., None] * jnp.einsum("...tk,...kv->...tv", q, starts.c)
  qn = inter * jnp.einsum("...tk,...k->...t", q, starts.n)
  causal = np.tril(np.ones((L, L), bool)).reshape((1,) * (F.ndim - 1) + (L, L))
  log_d = jnp.where(causal, F[..., :, None] - m[..., :, None] + g[..., None, :], -jnp.inf)
  scores = jnp.einsum("...tk,...sk->...ts", q, k) * jnp.exp(log_d)
  num = num + jnp.einsum("...ts,...sv->...tv", scores, v)
  qn = qn + jnp.sum(scores, axis=-1)
  den = jnp.maximum(jnp.abs(qn), jnp.exp(-m)) + s.eps
  ys = num / den[..., None]  # (chunks, *batch, NH, L, V)
  ys = jnp.moveaxis(ys, -2, 1)  # (chunks, L, *batch, NH, V)
  ys = _merge_heads(ys).reshape(steps, *xs.shape[1:-1], s.hidden)
  return final, ys[:T]


@functools.lru_cache(maxsize=256)
def _chunkwise_member(s: _Sizes):
  return functools.partial(_mlstm_chunkwise, s)


def _mlstm_keep_write(gates: MLSTMGates) -> tuple[Array, Array]:
  return gates.f, gates.i


@_kit.memoized
def mlstm(
  hidden_size: int, *, num_heads: int = 4, key_size: int | None = None, eps: float = 1e-6
) -> Cell:
  r"""mLSTM (Beck et al. 2024): a matrix memory per head, written with exponential input gates.

  Per head (``K`` key size, ``V = H / NH`` value size; gates are scalars per head):

  .. math::

    q, k, v &= x_t W_q / \sqrt K,\; x_t W_k,\; x_t W_v, \qquad
    \tilde\imath = x_t w_i + b_i, \quad \tilde f = x_t w_f + b_f \\
    m_t &= \max(\log\sigma(\tilde f) + m_{t-1},\; \tilde\imath), \qquad
    f' = e^{\log\sigma(\tilde f) + m_{t-1} - m_t}, \quad i' = e^{\tilde\imath - m_t} \\
    C_t &= f' C_{t-1} + i'\, k v^\top, \qquad n_t = f' n_{t-1} + i'\, k \\
    h_t &= \frac{q^\top C_t}{\max(|q^\top n_t|, e^{-m_t}) + \epsilon}

  equal to mlstm-kernels 2.0.6's ``mlstm_recurrent_step__native_fw`` (the JAX step that
  xLSTM-7B's kernels are tested against); ``y`` concatenates the heads' ``h``. Carry
  :class:`MLSTMState` ``(C, n, m)``, zeros at the start (``m_0 = 0`` as upstream). The output
  is not a leaf of the carry: the cell offers ``read(params, carry, x)``.

  Decisions (SPEC §3d), each checked in the tests:

  * **The stabiliser** ``m`` is a running log-scale: the carry holds the unstabilised
    :math:`(\tilde C, \tilde n) = (C, n) e^{m}`, which follows
    :math:`\tilde C_t = \sigma(\tilde f) \tilde C_{t-1} + e^{\tilde\imath} k v^\top`, and the
    readout's :math:`e^{-m_t}` is the image of the unstabilised :math:`\max(|q^\top\tilde n|, 1)`.
    Gradients are autodiff through the max.
  * ``eps`` (1e-6 upstream) is added in the **stabilised** frame, so with ``eps > 0`` the
    output depends on the frame: :math:`h = q^\top\tilde C / (\max(|q^\top\tilde n|, 1) +
    \epsilon e^{m})`, a relative error :math:`\epsilon e^{m}` that grows with the stabiliser
    (which grows with large input gates). With ``eps=0`` the readout is a ratio of
    :math:`C, n` and :math:`e^{-m}`, all scaled alike by a change of frame, so it depends
    only on the unstabilised state: two runs that keep different frames (a chunkwise or
    parallel kernel, another initial ``m``) give the same outputs. ``1e-6`` matches the
    official code; ``0`` makes the output a function of the state alone.
  * **Chunkwise** (``cell.chunkwise(params, xs, carry, valid, chunk_size)``,
    ``impl="chunkwise"``): within a chunk of ``L`` steps (default 64), with
    :math:`F_t = \sum_{r \le t} \log\sigma(\tilde f_r)` from the chunk's start, the step
    loop's own stabiliser in closed form :math:`m_t = F_t + \max(m_0, \max_{s \le t}
    (\tilde\imath_s - F_s))` (a cumulative max: the max-plus recurrence unrolled), and the
    outputs as an ``(L × L)`` decay-masked matmul
    :math:`q_t^\top C_t = e^{F_t + m_0 - m_t} q_t^\top C_0 + \sum_{s \le t}
    e^{F_t - F_s + \tilde\imath_s - m_t} (q_t \cdot k_s) v_s` (likewise :math:`q^\top n`);
    between chunks, the recurrent :math:`(C, n, m)` update. Every exponent is :math:`\le 0`.
    Because it keeps the step loop's frame :math:`m_t` exactly, the outputs, the final carry
    (``m`` included) and all gradients equal the step loop's up to rounding, **for any**
    ``eps`` (not only ``eps=0``). Memory :math:`O(T \cdot L)`, no ``(T, T)`` array.
    A step where ``valid`` is False holds the carry through the gates: forget 1
    (:math:`\log\sigma` term 0) and :math:`\tilde\imath = -\infty` (no write); ``T`` need
    not be a multiple of ``L``.
  * **Initialisation** (xlstm's ``mLSTMCell``): ``w_i = w_f = 0``, ``b_f`` = linspace(3, 6)
    over heads (3 for one head), ``b_i ~ N(0, 0.1²)``; ``w_q, w_k, w_v`` (which the official
    cell does not own: the xlstm layer makes q, k, v with head-wise projections) as xlstm's
    ``small_init``, :math:`N(0, 2 / (5 I))`.

  Args:
    hidden_size: ``H``, a multiple of ``num_heads`` (the value size per head is ``H / NH``).
    num_heads: ``NH``.
    key_size: ``K`` per head; ``None`` means ``H / NH``.
    eps: the readout's denominator offset, ``>= 0`` (see above).

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`MLSTMParams`, an :class:`MLSTMState` carry,
    :class:`MLSTMGates`, ``read`` and ``chunkwise``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.mlstm(8, num_heads=2, eps=0.0)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs = jax.random.normal(jax.random.key(1), (10, 2, 3))
    >>> carry, ys = gj.scan(cell, params, xs)
    >>> carry.c.shape, carry.n.shape, carry.m.shape
    ((2, 2, 4, 4), (2, 2, 4), (2, 2))
    >>> chunkwise = jax.jit(cell.chunkwise, static_argnums=(3, 4))    # valid=None, chunk 4
    >>> carry_c, ys_c = chunkwise(params, xs, cell.initial_carry((2,)), None, 4)
    >>> bool(jnp.allclose(ys_c, ys, atol=1e-5)), bool(jnp.allclose(carry_c.m, carry.m))
    (True, True)
  """
  _kit.check_hidden_size(hidden_size)
  V = _kit.check_heads(hidden_size, num_heads)
  if key_size is not None:
    _kit.check_positive_int("key_size", key_size)
  eps = _kit.check_number("eps", eps, low=0.0)
  H, NH = hidden_size, num_heads
  K = V if key_size is None else key_size
  s = _Sizes(H, NH, K, V, eps)

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> MLSTMParams:
    _kit.check_input_size(input_size)
    k_q, k_k, k_v, k_i = jax.random.split(key, 4)
    b_i = 0.1 * jax.random.normal(k_i, (NH,), _kit.draw_dtype(dtype))
    return MLSTMParams(
      w_q=_small_init(k_q, (input_size, NH * K), dtype),
      w_k=_small_init(k_k, (input_size, NH * K), dtype),
      w_v=_small_init(k_v, (input_size, H), dtype),
      w_i=jnp.zeros((input_size, NH), dtype),
      w_f=jnp.zeros((input_size, NH), dtype),
      b_i=b_i.astype(dtype),
      b_f=jnp.asarray(np.linspace(3.0, 6.0, NH), dtype),
    )

  def initial_carry(
    batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32
  ) -> MLSTMState:
    batch = tuple(batch_shape)
    return MLSTMState(
      c=jnp.zeros((*batch, NH, K, V), dtype),
      n=jnp.zeros((*batch, NH, K), dtype),
      m=jnp.zeros((*batch, NH), dtype),
    )

  return _kit.build(
    "mlstm",
    H,
    title=DISPLAY_NAMES["mlstm"],
    init=init,
    initial_carry=initial_carry,
    project=_mlstm_project,
    recur=functools.partial(_mlstm_recur, s),
    options=MLSTMOptions(num_heads=num_heads, key_size=key_size, eps=eps),
    gate_names=("i", "f"),
    keep_write=_mlstm_keep_write,
    read=functools.partial(_mlstm_read, s),
    chunkwise=_chunkwise_member(s),
  )


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"slstm": "sLSTM", "mlstm": "mLSTM"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (slstm, mlstm)
