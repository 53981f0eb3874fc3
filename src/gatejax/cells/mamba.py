r"""Mamba's selective state space model S6 (Gu & Dao 2023), one selective scan as a cell.

Equal to mamba-ssm 2.3.2's ``selective_scan_ref`` (``delta_softplus=True``, the bias
``dt_proj_b`` as ``delta_bias``, real ``A``, input-dependent ``B`` and ``C``), fed as
``mamba_simple.Mamba.forward`` feeds it (``x_proj``, then ``dt_proj``'s weight). The state is
a matrix per sequence, ``h (H, N)``: ``N`` state dimensions for each of the ``H`` channels.
Given the input, the step is affine in ``h`` with an elementwise multiplier, so the cell
offers ``affine`` (``impl="associative"``, :func:`gatejax.parallel_scan` in one sweep, the
exact Jacobian ``diag(ā_t)`` in the analysis) and ``read`` (its output is not its state).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.affine import Affine
from gatejax.cells._kit import Cell

__all__ = ["S6Options", "S6Params", "s6"]

# Mamba.__init__'s defaults for the step size Δ at init.
_DT_MIN, _DT_MAX, _DT_FLOOR = 1e-3, 0.1, 1e-4


class S6Params(NamedTuple):
  """S6 parameters (SPEC §3d), in the layout ``u @ param`` (mamba's weights transposed).

  ``w_x`` makes the scan's input ``u = x w_x`` (no bias); ``x_proj`` gives ``[δ, B, C]``
  (sizes ``R, N, N``) from ``u``; ``Δ = softplus(δ dt_proj_w + dt_proj_b)``; ``A = −exp(a_log)``;
  ``d`` is mamba's ``D`` skip.
  """

  w_x: Float[Array, "input hidden"]
  x_proj: Float[Array, "hidden rank_plus_2state"]
  dt_proj_w: Float[Array, "rank hidden"]
  dt_proj_b: Float[Array, " hidden"]
  a_log: Float[Array, "hidden state"]
  d: Float[Array, " hidden"]


class S6Options(NamedTuple):
  """The options :func:`s6` was called with (``cell.options``; ``dt_rank`` resolved)."""

  state_size: int
  dt_rank: int
  negative_eigenvalues: bool


def _per_channel(v: Array, like: Array) -> Array:
  """``v`` of shape ``(H,)`` or ``(H, N)`` broadcast explicitly against ``like (..., H[, N])``."""
  return jnp.reshape(v, (1,) * (like.ndim - v.ndim) + v.shape)


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], bound: float, dtype: DTypeLike) -> Array:
  return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)


@_kit.memoized
def s6(
  hidden_size: int,
  *,
  state_size: int = 16,
  dt_rank: int | None = None,
  negative_eigenvalues: bool = False,
) -> Cell:
  r"""S6, Mamba's selective scan (Gu & Dao 2023), equal to mamba-ssm's ``selective_scan_ref``.

  On the input projection :math:`u_t = x_t W_x` (``H`` channels):

  .. math::

    [\delta_t, B_t, C_t] &= u_t\, W_{xp} \qquad (\text{sizes } R, N, N) \\
    \Delta_t &= \mathrm{softplus}(\delta_t W_{dt} + b_{dt}) \in \mathbb{R}^H, \qquad
      A = -\exp(\texttt{a\_log}) \in \mathbb{R}^{H \times N} \\
    \bar a_t &= \exp(\Delta_t \otimes A) \quad (\text{elementwise}: \bar a_{t,dn} =
      e^{\Delta_{t,d} A_{dn}}) \\
    h_t &= \bar a_t \odot h_{t-1} + (\Delta_t \odot u_t) \otimes B_t, \qquad
    y_t = h_t C_t + d \odot u_t

  with :math:`W_{xp}` = ``x_proj``, :math:`W_{dt}, b_{dt}` = ``dt_proj_w, dt_proj_b``. The
  carry is ``h (*batch, H, N)``; ``read`` recomputes :math:`u_t` and :math:`C_t` from
  :math:`x_t`. The step Jacobian is :math:`\mathrm{diag}(\bar a_t)` over the ``H·N`` entries,
  so the Lyapunov exponents are :math:`\lambda_{dn} = \mathrm{mean}_t\, \Delta_{t,d} A_{dn}`,
  exactly, for any input.

  Decisions, each documented where the official code, the paper and a cell part ways:

  * **The scan alone.** Mamba's block wraps it in ``in_proj`` (an ``x`` and a ``z`` half), a
    depthwise causal convolution with SiLU, the gate ``y · silu(z)`` and ``out_proj``. S6 here
    is what ``selective_scan_ref`` computes, on ``u = x W_x`` (SPEC: no bias): a cell reads one
    input per step, and a convolution over past inputs would be a second state.
  * **Discretisation as the code:** :math:`\bar a = \exp(\Delta A)` (zero-order hold) but
    :math:`\bar B = \Delta B` (Euler), not the paper's ZOH :math:`(\Delta A)^{-1}(\exp(\Delta A)
    - I)\,\Delta B` (mamba issue 281).
  * ``negative_eigenvalues=True`` multiplies by :math:`2\bar a - 1 \in (-1, 1)` instead of
    :math:`\bar a \in (0, 1)`, the input term unchanged (Grazzi et al. 2025,
    ``unlocking_state_tracking``'s ``deltaA = 2·exp(ΔA) − 1``); the exponents become
    :math:`\mathrm{mean}_t \log|2 e^{\Delta_{t,d} A_{dn}} - 1|`.
  * ``dt_rank=None`` means :math:`R = \lceil H/16 \rceil` (SPEC's name and value). Mamba's own
    ``"auto"`` is :math:`\lceil d_{model}/16 \rceil` where the scan's width is ``d_inner =
    2·d_model``, i.e. :math:`\lceil H/32 \rceil` in this cell's terms: pass
    ``dt_rank=math.ceil(H / 32)`` for Mamba's rank.
  * **Initialisation, official where mamba defines it** (``Mamba.__init__``): S4D-real
    ``a_log[:, n] = log(n + 1)`` (:math:`A = -(1, 2, \dots, N)` for every channel), ``d = 1``,
    ``dt_proj_b`` :math:`= \mathrm{softplus}^{-1}(\Delta_0)` with :math:`\Delta_0` log-uniform on
    ``[1e-3, 0.1]`` (clamped at ``1e-4``, a no-op there), ``dt_proj_w`` ``dt_init="random"``:
    :math:`U(\pm R^{-1/2})`; ``x_proj`` and ``w_x`` as torch's ``nn.Linear`` default (mamba keeps
    it: ``_init_weights`` only zeroes biases), :math:`U(\pm 1/\sqrt{\text{fan-in}})`, fan-in ``H``
    and ``I``.

  Args:
    hidden_size: ``H``, the channels of ``u`` and ``y``.
    state_size: ``N``, state dimensions per channel.
    dt_rank: ``R``, the rank of the step-size projection; ``None``: ``ceil(H / 16)``.
    negative_eigenvalues: the multiplier :math:`2\bar a - 1` instead of :math:`\bar a`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`S6Params`, an array carry ``h (*batch, H, N)``,
    ``read`` and ``affine``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.s6(32, state_size=4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.x_proj.shape, params.dt_proj_w.shape           # R = ceil(32 / 16) = 2
    ((32, 10), (2, 32))
    >>> params.a_log[0]                                       # S4D-real: A = -(1, 2, 3, 4)
    Array([0.       , 0.6931472, 1.0986123, 1.3862944], dtype=float32)
    >>> h, y = cell.step(params, cell.initial_carry((5,)), jnp.ones((5, 3)))
    >>> h.shape, y.shape
    ((5, 32, 4), (5, 32))
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_positive_int("state_size", state_size)
  if dt_rank is None:
    dt_rank = math.ceil(hidden_size / 16)
  _kit.check_positive_int("dt_rank", dt_rank)
  if not isinstance(negative_eigenvalues, bool):
    raise TypeError(f"negative_eigenvalues must be a bool, got {negative_eigenvalues!r}")
  H, N, R = hidden_size, state_size, dt_rank

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> S6Params:
    _kit.check_input_size(input_size)
    draw = _kit.draw_dtype(dtype)
    k_x, k_p, k_w, k_b = jax.random.split(key, 4)
    log_min, log_max = math.log(_DT_MIN), math.log(_DT_MAX)
    dt = jnp.exp(jax.random.uniform(k_b, (H,), draw) * (log_max - log_min) + log_min)
    dt = jnp.maximum(dt, _DT_FLOOR)
    a_log = jnp.log(jnp.arange(1, N + 1, dtype=draw))
    return S6Params(
      w_x=_uniform(k_x, (input_size, H), input_size**-0.5, draw).astype(dtype),
      x_proj=_uniform(k_p, (H, R + 2 * N), H**-0.5, draw).astype(dtype),
      dt_proj_w=_uniform(k_w, (R, H), R**-0.5, draw).astype(dtype),
      dt_proj_b=(dt + jnp.log(-jnp.expm1(-dt))).astype(dtype),  # softplus⁻¹(dt)
      a_log=jnp.broadcast_to(a_log, (H, N)).astype(dtype),
      d=jnp.ones((H,), dtype),
    )

  def project(params: S6Params, x: Array) -> Array:
    """``x (..., I) -> (..., 2H + 2N)``: ``Δ``, ``u``, ``B``, ``C``."""
    u = x @ params.w_x
    delta, b, c = jnp.split(u @ params.x_proj, [R, R + N], axis=-1)
    step = jax.nn.softplus(_kit.add_bias(delta @ params.dt_proj_w, params.dt_proj_b))
    return jnp.concatenate([step, u, b, c], axis=-1)

  def unpack(px: Array) -> tuple[Array, Array, Array, Array]:
    step, u, b, c = jnp.split(px, [H, 2 * H, 2 * H + N], axis=-1)
    return step, u, b, c

  def coefficients(params: S6Params, px: Array) -> tuple[Array, Array]:
    step, u, b, _ = unpack(px)
    a_bar = jnp.exp(step[..., None] * _per_channel(-jnp.exp(params.a_log), step[..., None]))
    if negative_eigenvalues:
      a_bar = 2 * a_bar - 1
    return a_bar, (step * u)[..., None] * b[..., None, :]

  def output(params: S6Params, h: Array, u: Array, c: Array) -> Array:
    return jnp.einsum("...dn,...n->...d", h, c) + _per_channel(params.d, u) * u

  def recur(params: S6Params, h: Array, px: Array) -> tuple[Array, Array, Any]:
    a_bar, bu = coefficients(params, px)
    h = a_bar * h + bu
    _, u, _, c = unpack(px)
    return h, output(params, h, u, c), ()

  def read(params: S6Params, h: Array, x: Array) -> Array:
    _, u, _, c = unpack(project(params, x))
    return output(params, h, u, c)

  def affine(params: S6Params, xs: Array) -> Affine:
    return Affine(*coefficients(params, project(params, xs)))

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> Array:
    return jnp.zeros((*tuple(batch_shape), H, N), dtype)

  return _kit.build(
    "s6",
    H,
    title=DISPLAY_NAMES["s6"],
    init=init,
    project=project,
    recur=recur,
    options=S6Options(state_size=N, dt_rank=R, negative_eigenvalues=negative_eigenvalues),
    initial_carry=initial_carry,
    affine=affine,
    read=read,
  )


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"s6": "S6"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (s6,)
