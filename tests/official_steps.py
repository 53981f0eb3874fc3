"""NumPy float64 transcriptions of the official reference code of the modern cells (SPEC §3d).

Each ``<family>_official(params, xs, carry=None, ...)`` takes SPEC §3d's parameter layout
(any object with the SPEC field names as attributes: a gatejax params NamedTuple, or the
``SimpleNamespace`` of a test), converts it *explicitly* into the layout of the official code
(that conversion is the part a cell most easily gets wrong, so it is spelt out and commented),
and then runs the official step, transcribed line by line with the official names in the
comments, over a time-major sequence ``xs (T, B, I)``. It returns ``(carry, ys)``: the final
carry in SPEC's carry layout and the outputs ``ys (T, B, H)``. ``carry=None`` is SPEC's zero
carry (complex zeros for the LRU).

The official sources (read in the public repositories; versions as SPEC names them):

========  ==================================================================================
sLSTM     xlstm 2.0.6 ``xlstm/blocks/slstm/src/vanilla/slstm.py::slstm_forward_pointwise``,
          driven by ``vanilla/__init__.py::slstm_forward`` (the block-diagonal ``Ry``), with
          the layouts of ``xlstm/blocks/slstm/cell.py::sLSTMCell_vanilla``
mLSTM     mlstm-kernels 2.0.6 ``mlstm_kernels/jax/recurrent/native_step.py::
          mlstm_recurrent_step__native_fw``, driven as ``native_sequence.py::
          _mlstm_recurrent_sequence_loop_fw`` drives it
RG-LRU    recurrentgemma 1.0.1 ``recurrentgemma/jax/layers.py::RGLRU.__call__`` and
          ``BlockDiagonalLinear.__call__``; the scan ``recurrentgemma/jax/scan.py::
          lru_linear_scan``
S6        mamba-ssm 2.3.2 ``mamba_ssm/ops/selective_scan_interface.py::selective_scan_ref``
          (``delta_softplus=True``, ``delta_bias``), fed as ``mamba_ssm/modules/
          mamba_simple.py::Mamba.forward`` feeds it (``x_proj``, ``dt_proj``); negative
          eigenvalues: automl/unlocking_state_tracking ``mamba_dev/mamba_ssm/ops/
          selective_scan_interface.py::selective_scan_ref`` (``deltaA = 2·exp(ΔA) − 1``)
LRU       Orvieto et al. 2023 App. A ``forward`` = NicolasZucchet/minimal-LRU
          ``lru/model.py::LRU.__call__``
DeltaNet  fla-core 0.6.0 ``fla/ops/delta_rule/naive.py::delta_rule_recurrence`` (ungated),
          ``fla/ops/gated_delta_rule/naive.py::naive_recurrent_gated_delta_rule`` and
          ``fla/ops/gated_delta_rule/gate.py::naive_gdn_gate`` (gated); q/k as
          ``fla/modules/l2norm.py::l2norm`` (eps 1e-6), β as ``fla/layers/delta_net.py``
          (``b_proj(x).sigmoid()``, ``allow_neg_eigval``: ``beta * 2``)
========  ==================================================================================

Where the official code and SPEC part ways (each is a keyword here, defaulting to the
official behaviour unless noted):

* sLSTM: the vanilla backend takes the ``n == 0`` branch when *all* of ``n`` (the whole batch)
  is zero; SPEC asks for it element by element (``elementwise_n_zero=True``). They agree
  from the zero carry; on a carry with some rows ``n = 0`` (and ``c = 0`` there) they differ
  only in the frame ``m`` (``c``, ``n`` scaled alike), never in ``y``. The official ``min(·, 1)``
  clamps are kept; they are no-ops except on a carry with ``n == 0`` and ``c != 0`` (there
  ``f'`` can exceed 1 before the clamp).
* mLSTM: ``eps`` (1e-6 upstream) is added to the denominator in the stabilised frame, so the
  output depends on the frame ``m`` unless ``eps=0``.
* RG-LRU: the official layer skips the ``sqrt(1 − a²)`` factor and zeroes ``a`` where
  ``segment_pos == 0``; SPEC normalises every step (``segment_pos=None``, the default here,
  means no step is a segment start). The official ``-8.0`` is SPEC's ``c`` (default 8).
* S6, LRU: the official functions start from a zero state and take none; ``carry`` here
  replaces that zero (the one line marked), which is SPEC's ``carry`` argument.
* The official softplus (torch ``F.softplus``, threshold 20) returns ``x`` for ``x > 20``;
  here softplus is exact (``logaddexp(0, x)``, as ``jax.nn.softplus``): they differ by at most
  ``exp(−20) ≈ 2e-9``, below float32's resolution, where the torch references compute (a
  float64 comparison with torch would see it where a pre-activation exceeds 20).

``<family>_official_init(...)`` returns an :class:`InitSpec`: the official initialisation as
SPEC states it, its deterministic parts exactly and its random parts as distributions, and
``check_init(params, spec)`` asserts a cell's ``init`` output against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

# --------------------------------------------------------------------------------------------
# Shared pieces (stable in float64, equal to the torch/JAX functions the official code calls)


def _f64(a) -> np.ndarray:
  return np.asarray(a, dtype=np.float64)


def _field(params, name: str) -> np.ndarray:
  return _f64(getattr(params, name))


def sigmoid(a):
  """``torch.sigmoid`` / ``jax.nn.sigmoid``, without overflow for large ``|a|``."""
  return np.exp(-np.logaddexp(0.0, -a))


def log_sigmoid(a):
  """``torch.nn.functional.logsigmoid`` / ``jax.nn.log_sigmoid``: ``−softplus(−a)``."""
  return -np.logaddexp(0.0, -a)


def softplus(a):
  """Exact ``log(1 + e^a)`` (torch's threshold-20 shortcut differs by at most 2e-9)."""
  return np.logaddexp(0.0, a)


def inverse_softplus(y):
  """``y + log(−expm1(−y))``: mamba's and fla's ``inv_dt`` (pytorch issue 72759)."""
  return y + np.log(-np.expm1(-y))


def l2norm(x, eps: float = 1e-6):
  """``fla.modules.l2norm``: ``x / sqrt(Σx² + eps)`` over the last axis (finite at 0)."""
  return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + eps)


def _heads(a, num_heads: int):
  """Split a head-major last axis ``NH·X`` (SPEC: entry ``h·X + d``) into ``(NH, X)``."""
  return a.reshape(*a.shape[:-1], num_heads, a.shape[-1] // num_heads)


def _check_xs(xs) -> np.ndarray:
  xs = _f64(xs)
  if xs.ndim != 3:
    raise ValueError(f"xs must be time-major (T, B, I), got shape {xs.shape}")
  return xs


# --------------------------------------------------------------------------------------------
# sLSTM


class SLSTMCarry(NamedTuple):
  """SPEC's ``SLSTMState(y, c, n, m)``, each ``(B, H)``; the official ``states (4, B, H)``."""

  y: np.ndarray
  c: np.ndarray
  n: np.ndarray
  m: np.ndarray


def slstm_layouts(params):
  """SPEC's sLSTM params in the vanilla backend's internal layouts.

  Returns ``(w_x, R_int, b_int)``:

  * ``w_x (I, 4H)`` unchanged: its columns are already the official cell input's "BSGNH"
    layout with ``internal_input_shape = "SBGNH"`` (gate-major, then head, then unit), which is
    what ``slstm_forward_pointwise`` views as ``raw.view(B, 4, H)``.
  * ``R_int (NH, 4·Dh, Dh)`` (``_recurrent_kernel``, ``R [K, R*H, H]`` in ``slstm_forward``):
    ``R_int[h, g·Dh + j, k] = r[h, k, g·Dh + j]``, i.e. ``r.transpose(0, 2, 1)``. The cell's
    external kernel ``_recurrent_kernel_ (NH, Dh, 4, Dh)`` is ``r.reshape(NH, Dh, 4, Dh)``,
    and ``sLSTMCell_vanilla._recurrent_kernel_ext2int`` (``permute(0, 2, 3, 1)``) gives the same
    ``R_int``.
  * ``b_int (4·H,)`` (``_bias``, gate-major) equal to SPEC's ``b``; the external bias
    ``(NH, 4, Dh)`` is ``b.reshape(4, NH, Dh).transpose(1, 0, 2)`` (head-major: the one layout
    here that is *not* SPEC's order).
  """
  w_x, r, b = _field(params, "w_x"), _field(params, "r"), _field(params, "b")
  num_heads, head_dim, gates_head_dim = r.shape
  if gates_head_dim != 4 * head_dim:
    raise ValueError(f"r must be (NH, D, 4D), got {r.shape}")
  hidden = num_heads * head_dim
  if w_x.shape[-1] != 4 * hidden or b.shape != (4 * hidden,):
    raise ValueError(f"w_x (I, 4H) and b (4H,) with H = {hidden}, got {w_x.shape}, {b.shape}")
  r_int = r.transpose(0, 2, 1)
  return w_x, r_int, b


def slstm_external_layouts(params):
  """The ``sLSTMCell`` parameters (``_recurrent_kernel_``, ``_bias_``) in their external layouts.

  For loading SPEC's params into an xlstm ``sLSTMCell`` (any backend):
  ``recurrent_kernel (NH, Dh, 4, Dh)`` and ``bias (NH, 4, Dh)``.
  """
  r, b = _field(params, "r"), _field(params, "b")
  num_heads, head_dim, _ = r.shape
  return r.reshape(num_heads, head_dim, 4, head_dim), b.reshape(4, num_heads, head_dim).transpose(
    1, 0, 2
  )


def _slstm_forward_pointwise(wx, ry, b, states, *, elementwise_n_zero):
  """``slstm_forward_pointwise(Wx, Ry, b, states, constants)``, vanilla, line by line."""
  raw = wx + ry + b  # raw = Wx + Ry + b
  _y, c, n, m = states  # torch.unbind(states.view(4, B, -1), dim=0)
  batch = raw.shape[0]
  iraw, fraw, zraw, oraw = np.moveaxis(raw.reshape(batch, 4, -1), 1, 0)  # raw.view(B, 4, -1)
  logfplusm = m + log_sigmoid(fraw)
  if elementwise_n_zero:
    # SPEC §3d (and the CUDA kernel's eq_zero_g): the branch element by element.
    mnew = np.where(n == 0.0, iraw, np.maximum(iraw, logfplusm))
  elif np.all(n == 0.0):  # if torch.all(n == 0.0): over the whole (B, H) tensor
    mnew = iraw
  else:
    mnew = np.maximum(iraw, logfplusm)
  ogate = sigmoid(oraw)
  igate = np.minimum(np.exp(iraw - mnew), 1.0)  # torch.minimum(exp(iraw - mnew), ones)
  fgate = np.minimum(np.exp(logfplusm - mnew), 1.0)
  cnew = fgate * c + igate * np.tanh(zraw)
  nnew = fgate * n + igate
  ynew = ogate * cnew / nnew
  return (ynew, cnew, nnew, mnew)


def slstm_official(params, xs, carry=None, *, elementwise_n_zero: bool = False):
  r"""sLSTM (Beck et al. 2024) as xlstm 2.0.6's vanilla ``slstm_forward`` runs it.

  Params (SPEC): ``w_x (I, 4H)``, ``r (NH, H/NH, 4H/NH)``, ``b (4H,)``, gate order i, f, z, o,
  gate-major then head-major. Carry ``SLSTMCarry(y, c, n, m)``, each ``(B, H)``.

  Returns:
    ``(SLSTMCarry, ys (T, B, H))``, ``ys[t]`` the ``y`` of step ``t``.
  """
  xs = _check_xs(xs)
  w_x, r_int, b = slstm_layouts(params)
  num_heads, gates_head_dim, head_dim = r_int.shape
  hidden = num_heads * head_dim
  batch = xs.shape[1]
  if carry is None:  # sLSTMCellBase._zero_state
    states = tuple(np.zeros((batch, hidden)) for _ in range(4))
  else:
    states = tuple(_field(carry, name) for name in SLSTMCarry._fields)
  num_gates_r = gates_head_dim // head_dim  # slstm_forward: R.shape[1] // R.shape[2]
  ys = []
  for wx_t in xs @ w_x:  # the cell input x (S, B, 4H), gate-major ("SBGNH")
    # slstm_forward: Ry = states[0].reshape(B, NH, 1, -1).matmul(R.transpose(1, 2)
    #   .reshape(1, NH, Dh, 4Dh)).reshape(B, NH, 4, -1).transpose(1, 2).reshape(B, -1)
    ry = (
      (states[0].reshape(batch, num_heads, 1, head_dim) @ r_int.transpose(0, 2, 1)[None])
      .reshape(batch, num_heads, num_gates_r, head_dim)
      .transpose(0, 2, 1, 3)
      .reshape(batch, -1)
    )
    states = _slstm_forward_pointwise(
      wx_t, ry, b[None], states, elementwise_n_zero=elementwise_n_zero
    )
    ys.append(states[0])
  return SLSTMCarry(*states), np.stack(ys)


# --------------------------------------------------------------------------------------------
# mLSTM


class MLSTMCarry(NamedTuple):
  """SPEC's ``MLSTMState``: ``c (B, NH, K, V)``, ``n (B, NH, K)``, ``m (B, NH)``.

  The official step keeps ``scaM_state (B, NH, 1)``; here ``m`` drops the trailing 1.
  """

  c: np.ndarray
  n: np.ndarray
  m: np.ndarray


def mlstm_inputs(params, x):
  """SPEC's projections of one input ``x (B, I)`` into the official step's arguments.

  ``vecQ, vecK (B, NH, K)`` = head-major split of ``x w_q``, ``x w_k`` (unscaled: the step
  scales q by ``K^{-1/2}``); ``vecV (B, NH, H/NH)``; ``scaI, scaF (B, NH, 1)`` the gate
  pre-activations ``x w_i + b_i``, ``x w_f + b_f``.
  """
  num_heads = _field(params, "w_i").shape[-1]
  vec_q = _heads(x @ _field(params, "w_q"), num_heads)
  vec_k = _heads(x @ _field(params, "w_k"), num_heads)
  vec_v = _heads(x @ _field(params, "w_v"), num_heads)
  sca_i = (x @ _field(params, "w_i") + _field(params, "b_i"))[..., None]
  sca_f = (x @ _field(params, "w_f") + _field(params, "b_f"))[..., None]
  return vec_q, vec_k, vec_v, sca_i, sca_f


def mlstm_recurrent_step_native_fw(
  matC_state, vecN_state, scaM_state, vecQ, vecK, vecV, scaI, scaF, eps=1e-6
):
  """``mlstm_recurrent_step__native_fw``, line by line (shapes in its comments)."""
  DHQK = vecQ.shape[-1]
  scaF_log = log_sigmoid(scaF)  # jax.nn.log_sigmoid(scaF)
  scaM_state_new = np.maximum(scaF_log + scaM_state, scaI)  # (B, NH, 1)
  scaF_act = np.exp(scaF_log + scaM_state - scaM_state_new)
  scaI_act = np.exp(scaI - scaM_state_new)
  vecQ_scaled = vecQ * (DHQK ** (-0.5))
  matC_state_new = scaF_act[:, :, :, None] * matC_state + scaI_act[:, :, :, None] * (
    vecK[:, :, :, None] @ vecV[:, :, None, :]
  )  # (B, NH, DHQK, DHV)
  vecN_state_new = scaF_act * vecN_state + scaI_act * vecK  # (B, NH, DHQK)
  h_num = (vecQ_scaled[:, :, None, :] @ matC_state_new)[:, :, 0]  # (B, NH, DHV)
  qn_dotproduct = (vecQ_scaled[:, :, None, :] @ vecN_state_new[:, :, :, None])[:, :, 0]
  max_val = np.exp(-scaM_state_new)  # (B, NH, 1)
  h_denom = np.maximum(np.abs(qn_dotproduct), max_val) + eps
  h = h_num / h_denom  # (B, NH, DHV)
  return h, (matC_state_new, vecN_state_new, scaM_state_new)


def mlstm_official(params, xs, carry=None, *, eps: float = 1e-6):
  r"""mLSTM as mlstm-kernels 2.0.6's JAX native step, looped as the sequence loop loops it.

  ``mlstm_recurrent_step__native_fw`` per step, driven as ``_mlstm_recurrent_sequence_loop_fw``.

  Params (SPEC): ``w_q, w_k (I, NH·K)``, ``w_v (I, H)``, ``w_i, w_f (I, NH)``, ``b_i, b_f
  (NH,)``. Carry ``MLSTMCarry(c (B, NH, K, H/NH), n (B, NH, K), m (B, NH))``; the zero carry
  has ``m = 0`` as upstream's (``vecM_state = zeros``).

  Returns:
    ``(MLSTMCarry, ys (T, B, H))``, the heads' ``h`` concatenated head-major.
  """
  xs = _check_xs(xs)
  num_heads = _field(params, "w_i").shape[-1]
  key_size = _field(params, "w_q").shape[-1] // num_heads
  value_size = _field(params, "w_v").shape[-1] // num_heads
  batch = xs.shape[1]
  if carry is None:
    c = np.zeros((batch, num_heads, key_size, value_size))
    n = np.zeros((batch, num_heads, key_size))
    m = np.zeros((batch, num_heads, 1))
  else:
    c, n = _field(carry, "c"), _field(carry, "n")
    m = _field(carry, "m")[..., None]  # SPEC (B, NH) -> scaM_state (B, NH, 1)
  ys = []
  for x in xs:
    q, k, v, i, f = mlstm_inputs(params, x)
    h, (c, n, m) = mlstm_recurrent_step_native_fw(c, n, m, q, k, v, i, f, eps=eps)
    ys.append(h.reshape(batch, num_heads * value_size))
  return MLSTMCarry(c, n, m[..., 0]), np.stack(ys)


# --------------------------------------------------------------------------------------------
# RG-LRU


def block_diagonal_linear(x, w, b):
  """``BlockDiagonalLinear.__call__``: ``w (NH, in, out)``, ``b (NH, out)``, SPEC's layout as is."""
  num_blocks = w.shape[0]
  x = _heads(x, num_blocks)  # einops "... (h i) -> ... h i"
  y = np.einsum("...hi,hij->...hj", x, w) + b
  return y.reshape(*y.shape[:-2], -1)  # "... h j -> ... (h j)"


def rg_lru_official(params, xs, carry=None, *, c: float = 8.0, segment_pos=None):
  r"""RG-LRU (De et al. 2024) as recurrentgemma 1.0.1's ``RGLRU.__call__`` (``only_real``).

  Params (SPEC): ``w_x (I, H)``, ``b_x (H,)``, ``a_param (H,)``, ``input_gate_w, a_gate_w (NH,
  H/NH, H/NH)``, ``input_gate_b, a_gate_b (NH, H/NH)``; the official module's params are
  ``{"a_param": a_param, "input_gate": {"w": input_gate_w, "b": input_gate_b}, "a_gate":
  {"w": a_gate_w, "b": a_gate_b}}`` with no change of layout, and its input ``x`` is SPEC's
  ``u = x w_x + b_x``. Carry ``h (B, H)`` (the official ``cache``).

  Args:
    segment_pos: ``(T, B)`` integer positions (time-major; the official takes ``(B, T)``).
      ``None``: no step starts a segment, so every step is normalised (SPEC). Where it is 0 the
      official resets: ``a = 0`` and no ``sqrt(1 − a²)`` factor.

  Returns:
    ``(h (B, H), ys (T, B, H))``.
  """
  xs = _check_xs(xs)
  a_param = _field(params, "a_param")
  u = xs @ _field(params, "w_x") + _field(params, "b_x")  # SPEC's input projection
  gate_x = sigmoid(
    block_diagonal_linear(u, _field(params, "input_gate_w"), _field(params, "input_gate_b"))
  )
  gate_a = sigmoid(block_diagonal_linear(u, _field(params, "a_gate_w"), _field(params, "a_gate_b")))
  log_a = -c * gate_a * softplus(a_param)  # -8.0 * gate_a * softplus(a_real_param)
  a, a_squared = np.exp(log_a), np.exp(2 * log_a)
  gated_x = u * gate_x
  if segment_pos is None:
    reset = np.zeros(u.shape[:2])
  else:
    reset = (np.asarray(segment_pos) == 0).astype(np.float64)  # (T, B)
  multiplier = np.sqrt(1 - a_squared)  # sqrt_bound_derivative(1 - a_squared, 1000): sqrt forward
  multiplier = reset[..., None] + (1 - reset)[..., None] * multiplier
  normalized_x = gated_x * multiplier
  a = a * (1 - reset[..., None])
  # scan.lru_linear_scan: h_t = a_t * h_prev + x_t, h0 = zeros when there is no cache
  h = np.zeros(u.shape[1:]) if carry is None else _f64(carry)
  ys = []
  for a_t, x_t in zip(a, normalized_x, strict=True):
    h = a_t * h + x_t
    ys.append(h)
  return h, np.stack(ys)


# --------------------------------------------------------------------------------------------
# S6


def s6_layouts(params):
  """SPEC's S6 params in ``mamba_simple.Mamba``'s layouts.

  ``x_proj.weight (R+2N, H) = x_proj.T``; ``dt_proj.weight (H, R) = dt_proj_w.T``;
  ``dt_proj.bias = dt_proj_b`` (passed as ``delta_bias``); ``A_log = a_log (H, N)``;
  ``D = d``. SPEC's ``w_x`` stands where Mamba has ``in_proj`` (x half) and the conv.
  """
  return {
    "x_proj.weight": _field(params, "x_proj").T,
    "dt_proj.weight": _field(params, "dt_proj_w").T,
    "dt_proj.bias": _field(params, "dt_proj_b"),
    "A_log": _field(params, "a_log"),
    "D": _field(params, "d"),
  }


def selective_scan_ref(
  u,
  delta,
  A,
  B,
  C,
  D=None,
  delta_bias=None,
  delta_softplus=False,
  x0=None,
  negative_eigenvalues=False,
):
  """``selective_scan_ref`` for real ``A``, variable ``B, C (batch, N, L)``, ``z=None``.

  ``u, delta (batch, D, L)``; returns ``(out (batch, D, L), last_state (batch, D, N))``
  (``return_last_state=True``). ``x0`` replaces the official ``A.new_zeros`` start.
  """
  if delta_bias is not None:
    delta = delta + delta_bias[..., None]
  if delta_softplus:
    delta = softplus(delta)
  batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
  x = np.zeros((batch, dim, dstate)) if x0 is None else x0  # x = A.new_zeros((batch, dim, dstate))
  ys = []
  deltaA = np.exp(np.einsum("bdl,dn->bdln", delta, A))
  if negative_eigenvalues:  # unlocking_state_tracking: deltaA = 2 * exp(...) - 1
    deltaA = 2 * deltaA - 1
  deltaB_u = np.einsum("bdl,bnl,bdl->bdln", delta, B, u)
  for i in range(u.shape[2]):
    x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
    y = np.einsum("bdn,bn->bd", x, C[:, :, i])
    ys.append(y)
  y = np.stack(ys, axis=2)  # (batch dim L)
  out = y if D is None else y + u * D[:, None]
  return out, x


def s6_official(params, xs, carry=None, *, negative_eigenvalues: bool = False):
  r"""S6 (Gu & Dao 2023) as mamba-ssm's ``selective_scan_ref``, fed as ``Mamba.forward`` feeds it.

  Params (SPEC): ``w_x (I, H)``, ``x_proj (H, R+2N)``, ``dt_proj_w (R, H)``, ``dt_proj_b (H,)``,
  ``a_log (H, N)``, ``d (H,)``; ``u = x w_x`` (no bias, no conv, no ``z`` gate). Carry
  ``h (B, H, N)``.

  Returns:
    ``(h (B, H, N), ys (T, B, H))``.
  """
  xs = _check_xs(xs)
  lay = s6_layouts(params)
  rank = lay["dt_proj.weight"].shape[1]
  dstate = lay["A_log"].shape[1]
  u = xs @ _field(params, "w_x")  # (L, b, d)
  # Mamba.forward: x_dbl = self.x_proj(x); dt, B, C = split(x_dbl, [dt_rank, d_state, d_state])
  x_dbl = u @ lay["x_proj.weight"].T
  dt, B, C = np.split(x_dbl, [rank, rank + dstate], axis=-1)
  dt = dt @ lay["dt_proj.weight"].T  # dt = self.dt_proj.weight @ dt.t()  (no bias here)
  A = -np.exp(lay["A_log"])  # A = -torch.exp(self.A_log.float())
  # time-major (L, b, ·) -> the reference's "b d l" and "b n l"
  out, last_state = selective_scan_ref(
    u.transpose(1, 2, 0),
    dt.transpose(1, 2, 0),
    A,
    B.transpose(1, 2, 0),
    C.transpose(1, 2, 0),
    lay["D"],
    delta_bias=lay["dt_proj.bias"],
    delta_softplus=True,
    x0=None if carry is None else _f64(carry),
    negative_eigenvalues=negative_eigenvalues,
  )
  return last_state, out.transpose(2, 0, 1)


# --------------------------------------------------------------------------------------------
# LRU


def lru_official(params, xs, carry=None):
  r"""LRU (Orvieto et al. 2023) as App. A's ``forward`` / minimal-LRU's ``LRU.__call__``.

  Params (SPEC): ``nu_log, theta_log, gamma_log (N,)``, ``b_re, b_im (N, I)``, ``c_re, c_im
  (H, N)``, ``d (I, H)``. The official ``B_re, B_im (N, H_in)``, ``C_re, C_im (H, N)`` are the
  same arrays; the official ``D (H,)`` multiplies elementwise (``D * u``, input size = output
  size), which is SPEC's ``d = diag(D)``. The official associative scan is run here as its
  sequential loop (equal up to rounding). Carry complex ``h (B, N)``.

  Returns:
    ``(h (B, N) complex, ys (T, B, H))``.
  """
  xs = _check_xs(xs)
  nu_log, theta_log = _field(params, "nu_log"), _field(params, "theta_log")
  gamma_log = _field(params, "gamma_log")
  diag_lambda = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
  B_norm = (_field(params, "b_re") + 1j * _field(params, "b_im")) * np.exp(gamma_log)[:, None]
  C = _field(params, "c_re") + 1j * _field(params, "c_im")
  d = _field(params, "d")
  Bu_elements = xs @ B_norm.T  # jax.vmap(lambda u: B_norm @ u)(inputs)
  # binary_operator_diag's scan = x_k = Lambda * x_{k-1} + Bu_k from x_0 = 0 (here: carry)
  h = np.zeros(Bu_elements.shape[1:], complex) if carry is None else np.asarray(carry, complex)
  ys = []
  for bu, x in zip(Bu_elements, xs, strict=True):
    h = diag_lambda * h + bu
    ys.append((h @ C.T).real + x @ d)  # (C @ h).real + D * x, with D -> d (I, H)
  return h, np.stack(ys)


# --------------------------------------------------------------------------------------------
# DeltaNet


def delta_net_inputs(params, xs, *, negative_eigenvalues: bool = False):
  """SPEC's projections, time-major: ``q, k (T, B, NH, K)`` (l2-normalised), ``v (T, B, NH,
  V)``, ``beta (T, B, NH)`` and, where the params have a ``w_a`` (not None), ``g (T, B, NH)``
  (the gated rule's log-decay from ``naive_gdn_gate``), else ``None``.
  """
  num_heads = _field(params, "w_beta").shape[-1]
  q = l2norm(_heads(xs @ _field(params, "w_q"), num_heads))
  k = l2norm(_heads(xs @ _field(params, "w_k"), num_heads))
  v = _heads(xs @ _field(params, "w_v"), num_heads)
  beta = sigmoid(xs @ _field(params, "w_beta") + _field(params, "b_beta"))  # b_proj(x).sigmoid()
  if negative_eigenvalues:
    beta = beta * 2.0  # allow_neg_eigval: beta = beta * 2.
  g = None
  # The gated params are those with a w_a (gj.DeltaNetParams leaves the gated fields None
  # for the ungated cell).
  if getattr(params, "w_a", None) is not None:
    # naive_gdn_gate(g=a_proj(x), A_log, dt_bias): -A_log.exp() * softplus(g + dt_bias)
    g = -np.exp(_field(params, "a_log")) * softplus(
      xs @ _field(params, "w_a") + _field(params, "dt_bias")
    )
  return q, k, v, beta, g


def delta_rule_recurrence(q, k, v, beta, initial_state=None):
  """``fla/ops/delta_rule/naive.py::delta_rule_recurrence``.

  ``q, k, v (b, h, l, d)``, ``beta (b, h, l)``; returns ``(o, S)`` (``output_final_state=True``).
  """
  b, h, l, d_k = q.shape
  d_v = v.shape[-1]
  o = np.zeros_like(v)
  S = np.zeros((b, h, d_k, d_v))
  q = q * (d_k**-0.5)
  beta = beta[..., None]  # if beta.ndim < v.ndim
  if initial_state is not None:
    S = S + initial_state
  for i in range(l):
    _k = k[:, :, i]
    _q = q[:, :, i]
    _v = v[:, :, i].copy()
    beta_i = beta[:, :, i]
    _v = _v - (S * _k[..., None]).sum(-2)
    _v = _v * beta_i
    S = S + _k[..., :, None] * _v[..., None, :]
    o[:, :, i] = np.einsum("bhd,bhdm->bhm", _q, S)
  return o, S


def naive_recurrent_gated_delta_rule(q, k, v, beta, g, scale=None, initial_state=None):
  """``fla/ops/gated_delta_rule/naive.py::naive_recurrent_gated_delta_rule``; ``(B, T, H, ·)``."""
  q, k, v, beta, g = (a.swapaxes(1, 2) for a in (q, k, v, beta, g))  # transpose(1, 2)
  B, H, T, K = k.shape
  V = v.shape[-1]
  o = np.zeros((B, H, T, V))
  h = np.zeros((B, H, K, V)) if initial_state is None else initial_state
  if scale is None:
    scale = 1 / (q.shape[-1] ** 0.5)
  q = q * scale
  for i in range(T):
    b_q = q[:, :, i]
    b_k = k[:, :, i]
    b_v = v[:, :, i].copy()
    h = h * np.exp(g[:, :, i])[..., None, None]
    b_beta = beta[:, :, i]
    b_v = b_v - (h * b_k[..., None]).sum(-2)
    b_v = b_v * b_beta[..., None]
    h = h + b_k[..., :, None] * b_v[..., None, :]
    o[:, :, i] = np.einsum("bhd,bhdm->bhm", b_q, h)
  return o.swapaxes(1, 2), h


def delta_net_official(params, xs, carry=None, *, negative_eigenvalues: bool = False):
  r"""Ungated DeltaNet (Yang et al. 2024) as fla's ``delta_rule_recurrence``.

  Params (SPEC): ``w_q, w_k (I, NH·K)``, ``w_v (I, H)``, ``w_beta (I, NH)``, ``b_beta (NH,)``;
  fla's layer has ``b_proj`` without a bias (SPEC's ``b_beta = 0``). Carry ``s (B, NH, K,
  H/NH)`` = fla's state ``S (b, h, d_k, d_v)`` (key-by-value; ``output_final_state=True``).

  Returns:
    ``(s (B, NH, K, V), ys (T, B, H))``.
  """
  xs = _check_xs(xs)
  q, k, v, beta, _ = delta_net_inputs(params, xs, negative_eigenvalues=negative_eigenvalues)
  # time-major (T, B, NH, ·) -> fla's "b h l d"
  o, s = delta_rule_recurrence(
    q.transpose(1, 2, 0, 3),
    k.transpose(1, 2, 0, 3),
    v.transpose(1, 2, 0, 3),
    beta.transpose(1, 2, 0),
    initial_state=None if carry is None else _f64(carry),
  )
  t, b = xs.shape[:2]
  return s, o.transpose(2, 0, 1, 3).reshape(t, b, -1)


def gated_delta_net_official(params, xs, carry=None, *, negative_eigenvalues: bool = False):
  r"""Gated DeltaNet (Yang et al. 2025) as fla's ``naive_recurrent_gated_delta_rule``.

  Params (SPEC): the ungated ones plus ``w_a (I, NH)`` (fla's ``a_proj``), ``a_log (NH,)``
  (``A_log``), ``dt_bias (NH,)``; ``g = naive_gdn_gate(x w_a, a_log, dt_bias)``, so
  ``α = exp(g)``. Carry ``s (B, NH, K, V)`` = fla's ``h (B, H, K, V)``.

  Returns:
    ``(s (B, NH, K, V), ys (T, B, H))``.
  """
  xs = _check_xs(xs)
  q, k, v, beta, g = delta_net_inputs(params, xs, negative_eigenvalues=negative_eigenvalues)
  if g is None:
    raise ValueError("gated_delta_net_official needs the gated params (w_a, a_log, dt_bias)")
  # time-major (T, B, ·) -> fla's (B, T, H, ·)
  o, s = naive_recurrent_gated_delta_rule(
    q.swapaxes(0, 1),
    k.swapaxes(0, 1),
    v.swapaxes(0, 1),
    beta.swapaxes(0, 1),
    g.swapaxes(0, 1),
    initial_state=None if carry is None else _f64(carry),
  )
  t, b = xs.shape[:2]
  return s, o.swapaxes(0, 1).reshape(t, b, -1)


# --------------------------------------------------------------------------------------------
# Initialisation, as SPEC states it (distributional)


class Exact(NamedTuple):
  """A deterministic part: ``value(params)`` must equal ``expected(params)``."""

  what: str
  value: Callable[[Any], np.ndarray]
  expected: Callable[[Any], np.ndarray]


class Drawn(NamedTuple):
  """A random part: ``value(params)`` are i.i.d. draws with this CDF, support and moments."""

  what: str
  value: Callable[[Any], np.ndarray]
  cdf: Callable[[np.ndarray], np.ndarray]
  low: float
  high: float
  mean: float
  std: float


class InitSpec(NamedTuple):
  """An official initialisation: shapes, exact parts, drawn parts, and what SPEC leaves open.

  ``open`` maps each field whose initial distribution SPEC does not fix to the official
  code's choice, in words (a cell may differ there).
  """

  shapes: dict[str, tuple[int, ...]]
  exact: tuple[Exact, ...]
  drawn: tuple[Drawn, ...]
  open: dict[str, str]


def _pick(name: str, transform: Callable[[np.ndarray], np.ndarray] = lambda a: a):
  return lambda params: transform(_field(params, name)).ravel()


def _const(value) -> Callable[[Any], np.ndarray]:
  value = _f64(value)
  return lambda params: value.ravel()


_vec_erf = np.vectorize(math.erf, otypes=[float])


def normal_cdf(mean: float, std: float):
  return lambda x: 0.5 * (1.0 + _vec_erf((np.asarray(x) - mean) / (std * math.sqrt(2.0))))


def uniform_cdf(low: float, high: float):
  return lambda x: np.clip((np.asarray(x) - low) / (high - low), 0.0, 1.0)


def _normal(what, value, mean, std) -> Drawn:
  return Drawn(what, value, normal_cdf(mean, std), -np.inf, np.inf, mean, std)


def _uniform(what, value, low, high) -> Drawn:
  return Drawn(
    what, value, uniform_cdf(low, high), low, high, (low + high) / 2, (high - low) / math.sqrt(12.0)
  )


def _dt_drawn(what: str, name: str, dt_min=1e-3, dt_max=0.1) -> Drawn:
  """mamba's (and fla's) ``inv_dt``: ``softplus(bias) = dt``, ``log dt ~ U(log 1e-3, log 0.1)``."""
  return _uniform(
    what + ": log softplus(·) ~ U(log 1e-3, log 0.1)",
    _pick(name, lambda b: np.log(softplus(b))),
    math.log(dt_min),
    math.log(dt_max),
  )


def slstm_powerlaw_forget_bias(head_dim: int) -> np.ndarray:
  """``powerlaw_blockdependent`` for one block (``_block_idx = 0``): ``5 − 12·(k/(D−1))^0.3``.

  Upstream computes ``arange(D) / (D − 1)``, so ``D = 1`` gives ``0/0 = NaN``; SPEC says 5.
  """
  if head_dim == 1:
    return np.array([5.0])
  return -(-5.0 + 12.0 * (np.arange(head_dim) / (head_dim - 1)) ** 0.3)


def slstm_official_init(input_size: int, hidden_size: int, *, num_heads: int = 4) -> InitSpec:
  """SPEC's sLSTM init (= ``sLSTMCellBase.reset_parameters``: powerlaw bias, zero kernel)."""
  d = hidden_size // num_heads
  b = np.zeros((4, num_heads, d))
  b[1] = slstm_powerlaw_forget_bias(d)  # gate f; i, z, o biases zero
  return InitSpec(
    shapes={
      "w_x": (input_size, 4 * hidden_size),
      "r": (num_heads, d, 4 * d),
      "b": (4 * hidden_size,),
    },
    exact=(
      Exact(
        "r = 0 (recurrent_weight_init='zeros')", _pick("r"), _const(np.zeros((num_heads, d, 4 * d)))
      ),
      Exact("b: forget block powerlaw per head, others 0", _pick("b"), _const(b.reshape(-1))),
    ),
    drawn=(),
    open={
      "w_x": "not part of the official cell; xlstm's sLSTMLayer gates are headwise "
      "LinearHeadwiseExpand maps, small_init N(0, 2/(5·embedding_dim))"
    },
  )


def mlstm_official_init(
  input_size: int, hidden_size: int, *, num_heads: int = 4, key_size: int | None = None
) -> InitSpec:
  """SPEC's mLSTM init (= xlstm ``mLSTMCell.reset_parameters``: fgate/igate ``Linear``)."""
  k = hidden_size // num_heads if key_size is None else key_size
  return InitSpec(
    shapes={
      "w_q": (input_size, num_heads * k),
      "w_k": (input_size, num_heads * k),
      "w_v": (input_size, hidden_size),
      "w_i": (input_size, num_heads),
      "w_f": (input_size, num_heads),
      "b_i": (num_heads,),
      "b_f": (num_heads,),
    },
    exact=(
      Exact("w_i = 0", _pick("w_i"), _const(np.zeros((input_size, num_heads)))),
      Exact("w_f = 0", _pick("w_f"), _const(np.zeros((input_size, num_heads)))),
      # bias_linspace_init_: torch.linspace(3, 6, NH) (NH = 1: [3.])
      Exact("b_f = linspace(3, 6, NH)", _pick("b_f"), _const(np.linspace(3.0, 6.0, num_heads))),
    ),
    drawn=(_normal("b_i ~ N(0, 0.1²)", _pick("b_i"), 0.0, 0.1),),
    open={
      name: "xlstm's mLSTMLayer: q, k, v are LinearHeadwiseExpand (blocksize 4) on the "
      "up-projection, small_init N(0, 2/(5·dim)); gate inputs are cat[q, k, v]"
      for name in ("w_q", "w_k", "w_v")
    },
  )


def rg_lru_official_init(
  input_size: int,
  hidden_size: int,
  *,
  num_heads: int = 1,
  min_rad: float = 0.9,
  max_rad: float = 0.999,
) -> InitSpec:
  """SPEC's RG-LRU init (= ``rnn_real_param_init`` and ``BlockDiagonalLinear``'s initialisers).

  ``a_param``: the base radius ``exp(−softplus(a_param))`` has its square uniform on
  ``[min_rad² + 1e-8, max_rad² + 1e-8]`` (``a_real = ½ log(u(max² − min²) + min² + 1e-8)``).
  Gate weights: flax ``variance_scaling(1.0, "fan_in", "normal")``, an untruncated normal of
  variance ``1/fan_in``, where JAX's ``fan_in`` of the ``(NH, D, D)`` kernel is ``D · NH = H``
  (the head axis counts as a receptive field), not the block's ``D``.
  """
  d = hidden_size // num_heads
  eps = 1e-8
  # jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal"): normal * sqrt(1/fan_in)
  gate_std = math.sqrt(1.0 / hidden_size)

  def radius_sq(a_param):
    return np.exp(-2.0 * softplus(a_param))

  return InitSpec(
    shapes={
      "w_x": (input_size, hidden_size),
      "b_x": (hidden_size,),
      "a_param": (hidden_size,),
      "input_gate_w": (num_heads, d, d),
      "a_gate_w": (num_heads, d, d),
      "input_gate_b": (num_heads, d),
      "a_gate_b": (num_heads, d),
    },
    exact=(
      Exact("input_gate_b = 0", _pick("input_gate_b"), _const(np.zeros((num_heads, d)))),
      Exact("a_gate_b = 0", _pick("a_gate_b"), _const(np.zeros((num_heads, d)))),
    ),
    drawn=(
      _uniform(
        "exp(-softplus(a_param))² ~ U(min_rad², max_rad²) (+1e-8)",
        _pick("a_param", radius_sq),
        min_rad**2 + eps,
        max_rad**2 + eps,
      ),
      _normal("input_gate_w ~ N(0, 1/H)", _pick("input_gate_w"), 0.0, gate_std),
      _normal("a_gate_w ~ N(0, 1/H)", _pick("a_gate_w"), 0.0, gate_std),
    ),
    open={
      "w_x": "Griffin's RecurrentBlock.linear_x (not part of RGLRU)",
      "b_x": "Griffin's RecurrentBlock.linear_x bias (not part of RGLRU)",
    },
  )


def s6_official_init(
  input_size: int, hidden_size: int, *, state_size: int = 16, dt_rank: int | None = None
) -> InitSpec:
  """SPEC's S6 init (= ``mamba_simple.Mamba.__init__``: S4D-real ``A_log``, ``D = 1``, ``inv_dt``).

  SPEC's default ``R = ceil(H/16)``; mamba's is ``ceil(d_model/16)`` with ``H = d_inner =
  2·d_model``, i.e. ``ceil(H/32)``.
  """
  n = state_size
  r = math.ceil(hidden_size / 16) if dt_rank is None else dt_rank
  a_log = np.log(np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), (hidden_size, n)))
  return InitSpec(
    shapes={
      "w_x": (input_size, hidden_size),
      "x_proj": (hidden_size, r + 2 * n),
      "dt_proj_w": (r, hidden_size),
      "dt_proj_b": (hidden_size,),
      "a_log": (hidden_size, n),
      "d": (hidden_size,),
    },
    exact=(
      Exact("a_log[:, n] = log(n + 1) (S4D-real)", _pick("a_log"), _const(a_log)),
      Exact("d = 1", _pick("d"), _const(np.ones(hidden_size))),
    ),
    drawn=(_dt_drawn("dt_proj_b", "dt_proj_b"),),
    open={
      "dt_proj_w": f"mamba dt_init='random': U(±R^-1/2) = U(±{r**-0.5:.4g})",
      "x_proj": "torch Linear default: U(±1/sqrt(H))",
      "w_x": "Mamba's in_proj (x half) + conv1d + SiLU, torch Linear default",
    },
  )


def lru_official_init(
  input_size: int,
  hidden_size: int,
  *,
  state_size: int | None = None,
  r_min: float = 0.0,
  r_max: float = 1.0,
  max_phase: float = 2 * math.pi,
) -> InitSpec:
  """SPEC's LRU init (= App. A ``init_lru_parameters`` / minimal-LRU ``nu_init``, ``theta_init``,
  ``gamma_log_init``, ``matrix_init``). minimal-LRU's default ``max_phase`` is 6.28, SPEC's 2π.
  """
  n = hidden_size if state_size is None else state_size

  def lam_abs_sq(nu_log):
    return np.exp(-2.0 * np.exp(nu_log))

  return InitSpec(
    shapes={
      "nu_log": (n,),
      "theta_log": (n,),
      "gamma_log": (n,),
      "b_re": (n, input_size),
      "b_im": (n, input_size),
      "c_re": (hidden_size, n),
      "c_im": (hidden_size, n),
      "d": (input_size, hidden_size),
    },
    exact=(
      Exact(
        "gamma_log = log sqrt(1 - |λ|²)",
        _pick("gamma_log"),
        lambda p: np.log(np.sqrt(1.0 - lam_abs_sq(_field(p, "nu_log")))),
      ),
    ),
    drawn=(
      _uniform(
        "|λ|² = exp(-2 exp(nu_log)) ~ U(r_min², r_max²)",
        _pick("nu_log", lam_abs_sq),
        r_min**2,
        r_max**2,
      ),
      _uniform("exp(theta_log) ~ U(0, max_phase)", _pick("theta_log", np.exp), 0.0, max_phase),
      _normal("b_re ~ N(0, 1/(2I))", _pick("b_re"), 0.0, 1 / math.sqrt(2 * input_size)),
      _normal("b_im ~ N(0, 1/(2I))", _pick("b_im"), 0.0, 1 / math.sqrt(2 * input_size)),
      _normal("c_re ~ N(0, 1/N)", _pick("c_re"), 0.0, 1 / math.sqrt(n)),
      _normal("c_im ~ N(0, 1/N)", _pick("c_im"), 0.0, 1 / math.sqrt(n)),
    ),
    open={"d": "official D (H,) ~ N(0, 1), elementwise (I = H): SPEC's d (I, H) = diag(D)"},
  )


def delta_net_official_init(
  input_size: int,
  hidden_size: int,
  *,
  num_heads: int = 1,
  key_size: int | None = None,
  gated: bool = True,
) -> InitSpec:
  """SPEC's DeltaNet init (= fla ``GatedDeltaNet.__init__``: ``A ~ U(0, 16)``, mamba's dt_bias)."""
  k = hidden_size // num_heads if key_size is None else key_size
  shapes = {
    "w_q": (input_size, num_heads * k),
    "w_k": (input_size, num_heads * k),
    "w_v": (input_size, hidden_size),
    "w_beta": (input_size, num_heads),
    "b_beta": (num_heads,),
  }
  drawn: tuple[Drawn, ...] = ()
  if gated:
    shapes |= {"w_a": (input_size, num_heads), "a_log": (num_heads,), "dt_bias": (num_heads,)}
    drawn = (
      _uniform("exp(a_log) ~ U(0, 16)", _pick("a_log", np.exp), 0.0, 16.0),
      _dt_drawn("dt_bias", "dt_bias"),
    )
  linear = "torch Linear default, U(±1/sqrt(I)), no bias"
  open_ = {name: linear for name in ("w_q", "w_k", "w_v", "w_beta")}
  open_["b_beta"] = "absent upstream (b_proj has bias=False): 0 reproduces it"
  if gated:
    open_["w_a"] = linear
  return InitSpec(shapes=shapes, exact=(), drawn=drawn, open=open_)


def ks_statistic(values: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]) -> float:
  """One-sample Kolmogorov–Smirnov statistic ``sup |F_n − F|``."""
  x = np.sort(_f64(values).ravel())
  n = x.size
  f = cdf(x)
  i = np.arange(1, n + 1)
  return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def ks_critical(n: int, alpha: float) -> float:
  """The asymptotic KS critical value ``sqrt(−ln(α/2)/2)/sqrt(n)``."""
  return math.sqrt(-math.log(alpha / 2) / 2) / math.sqrt(n)


def check_init(params, spec: InitSpec, *, alpha: float = 1e-6) -> None:
  """Assert that ``params`` (a cell's ``init`` output) follows ``spec``.

  Shapes exactly; exact parts to a few ulps of the params' own dtype; drawn parts inside
  their support and through a Kolmogorov–Smirnov test at level ``alpha``.
  """
  for name, shape in spec.shapes.items():
    got = np.shape(getattr(params, name))
    assert got == shape, f"{name}: shape {got}, expected {shape}"
  # exact parts to a few ulps of the coarsest float dtype among the fields
  eps = max(
    float(np.finfo(np.asarray(getattr(params, name)).dtype).eps)
    for name in spec.shapes
    if np.issubdtype(np.asarray(getattr(params, name)).dtype, np.inexact)
  )
  tol = 16 * eps
  for fact in spec.exact:
    value, expected = fact.value(params), fact.expected(params)
    np.testing.assert_allclose(value, expected, rtol=tol, atol=tol, err_msg=fact.what)
  for draw in spec.drawn:
    value = draw.value(params)
    slack = tol * max(1.0, abs(draw.low) if np.isfinite(draw.low) else 1.0)
    assert np.all(value >= draw.low - slack), f"{draw.what}: min {value.min()} < {draw.low}"
    assert np.all(value <= draw.high + slack), f"{draw.what}: max {value.max()} > {draw.high}"
    stat, crit = ks_statistic(value, draw.cdf), ks_critical(value.size, alpha)
    assert stat <= crit, f"{draw.what}: KS {stat:.3g} > {crit:.3g} (n = {value.size})"
