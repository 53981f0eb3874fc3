r"""The linear recurrent unit (LRU) of Orvieto et al. 2023: a complex diagonal recurrence.

"Resurrecting recurrent neural networks for long sequences" (ICML 2023), its Appendix A code,
which NicolasZucchet/minimal-LRU's ``lru/model.py::LRU.__call__`` reproduces line for line.
The carry is complex, ``h (*batch, N)``; the transition :math:`\mathrm{diag}(\lambda)` is
constant (it reads no input), so the cell offers ``affine`` (``impl="associative"``,
:func:`gatejax.parallel_scan` in one sweep, the exact Jacobian in the analysis) and ``read``
(its output :math:`\mathrm{Re}(C h) + x d` is not its state).
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

__all__ = ["LRUOptions", "LRUParams", "lru"]


class LRUParams(NamedTuple):
  r"""LRU parameters (SPEC §3d), the official arrays in the official layouts but ``d``.

  :math:`\lambda = \exp(-e^{\nu} + i e^{\theta})` from ``nu_log`` (:math:`\nu`) and
  ``theta_log`` (:math:`\theta`); the input matrix ``b_re + i·b_im`` ``(N, I)`` scaled row by
  row by :math:`\gamma = e^{\texttt{gamma\_log}}`; the readout ``c_re + i·c_im`` ``(H, N)``;
  the skip ``d (I, H)`` (``x d``; the official ``D`` is ``diag`` of it, see :func:`lru`).
  """

  nu_log: Float[Array, " state"]
  theta_log: Float[Array, " state"]
  gamma_log: Float[Array, " state"]
  b_re: Float[Array, "state input"]
  b_im: Float[Array, "state input"]
  c_re: Float[Array, "hidden state"]
  c_im: Float[Array, "hidden state"]
  d: Float[Array, "input hidden"]


class LRUOptions(NamedTuple):
  """The options :func:`lru` was called with (``cell.options``; ``state_size`` resolved)."""

  state_size: int
  r_min: float
  r_max: float
  max_phase: float


def _complex_dtype(dtype: DTypeLike) -> Any:
  """The complex dtype of a float dtype's precision (complex64 below 64 bits: JAX has no
  complex bfloat16 or float16)."""
  return jnp.complex128 if jnp.finfo(dtype).bits == 64 else jnp.complex64


def _lam(params: LRUParams, real: Any) -> Array:
  nu, theta = params.nu_log.astype(real), params.theta_log.astype(real)
  return jnp.exp(jax.lax.complex(-jnp.exp(nu), jnp.exp(theta)))


def _input(params: LRUParams, x: Array, real: Any) -> Array:
  r"""``(B_re + i B_im) x ⊙ γ``: the official ``B_norm @ u``, ``(..., N)`` complex."""
  x = x.astype(real)
  gamma = jnp.exp(params.gamma_log.astype(real))
  gamma = jnp.reshape(gamma, (1,) * (x.ndim - 1) + gamma.shape)
  b_re = x @ params.b_re.astype(real).T * gamma
  b_im = x @ params.b_im.astype(real).T * gamma
  return jax.lax.complex(b_re, b_im)


def _check_state(state_size: int | None, hidden_size: int) -> int:
  if state_size is None:
    return hidden_size
  _kit.check_positive_int("state_size", state_size)
  return state_size


@_kit.memoized
def lru(
  hidden_size: int,
  *,
  state_size: int | None = None,
  r_min: float = 0.0,
  r_max: float = 1.0,
  max_phase: float = 2 * math.pi,
) -> Cell:
  r"""LRU (Orvieto et al. 2023), equal to the paper's App. A / minimal-LRU ``LRU.__call__``.

  .. math::

    \lambda &= \exp(-e^{\nu} + i\, e^{\theta}) \in \mathbb{C}^N, \qquad |\lambda| < 1 \\
    h_t &= \lambda \odot h_{t-1} + \gamma \odot \big((B_{re} + i B_{im})\, x_t\big), \qquad
      \gamma = e^{\texttt{gamma\_log}} \\
    y_t &= \mathrm{Re}(C h_t) + x_t\, d, \qquad C = C_{re} + i\, C_{im}

  The carry ``h (*batch, N)`` is complex: complex64 for float32 (and half-precision) inputs,
  complex128 for float64; ``y`` has the inputs' real dtype. The step's Jacobian is
  :math:`\mathrm{diag}(\lambda)`, whatever the input: each state is a scaled rotation of
  :math:`(\mathrm{Re}\, h_j, \mathrm{Im}\, h_j)`, so its two Lyapunov exponents both equal
  :math:`\log|\lambda_j| = -e^{\nu_j}`, and :math:`\lVert \partial h_T / \partial h_k \rVert_2 =
  \max_j |\lambda_j|^{T-k}`.

  Decisions:

  * **Ring initialisation** as ``init_lru_parameters``: :math:`|\lambda|^2 \sim
    U(r_{min}^2, r_{max}^2)` (uniform on the ring's area), :math:`\nu = \log(-\tfrac12
    \log|\lambda|^2)`; the phase :math:`e^{\theta} \sim U(0, \texttt{max\_phase})`
    (minimal-LRU's default is 6.28, SPEC's and the paper's :math:`2\pi`).
  * **γ is a parameter, trained**: ``gamma_log`` starts at :math:`\log\sqrt{1 - |\lambda|^2}`
    (the normalisation that keeps :math:`E|h|^2` equal to the input's at init) and then moves
    on its own, as in the paper's code; it is never recomputed from :math:`\lambda`.
  * :math:`B_{re}, B_{im} \sim N(0, 1/(2I))`, :math:`C_{re}, C_{im} \sim N(0, 1/N)`.
  * **The skip** ``d (I, H)``: the official ``D (H,)`` multiplies elementwise (``D * u``, which
    needs ``I = H``); SPEC's ``x d`` is that with ``d = diag(D)``. ``init`` draws the official
    ``D ~ N(0, 1)`` on the diagonal and zeros elsewhere; for ``I ≠ H`` the diagonal is the
    rectangular one (input ``k`` to output ``k`` for ``k < min(I, H)``), the official skip where
    the two sizes share features, and training may fill the rest.
  * The official code runs the recurrence by an associative scan; its value is the loop's
    (``impl="associative"`` here runs it that way).

  Args:
    hidden_size: ``H``, the size of ``y``.
    state_size: ``N``, complex states; ``None``: ``N = H``.
    r_min: the smallest :math:`|\lambda|` at init, in ``[0, r_max]``.
    r_max: the largest, in ``[r_min, 1]``.
    max_phase: the largest phase :math:`\arg\lambda` at init, ``> 0``.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`LRUParams`, a complex array carry ``h``,
    ``read`` and ``affine``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lru(4, state_size=6, r_min=0.9, r_max=0.99)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> cell.initial_carry((2,)).dtype, params.d.shape
    (dtype('complex64'), (3, 4))
    >>> lam = jnp.abs(cell.affine(params, jnp.zeros((1, 3))).a[0])
    >>> bool((lam >= 0.9).all() and (lam <= 0.99).all())
    True
    >>> h, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> h.shape, y.shape, y.dtype
    ((2, 6), (2, 4), dtype('float32'))
  """
  _kit.check_hidden_size(hidden_size)
  N = _check_state(state_size, hidden_size)
  r_min = _kit.check_number("r_min", r_min, low=0.0, high=1.0)
  r_max = _kit.check_number("r_max", r_max, low=0.0, high=1.0)
  if not r_min <= r_max:
    raise ValueError(f"r_min must be <= r_max, got r_min={r_min}, r_max={r_max}")
  max_phase = _kit.check_number("max_phase", max_phase)
  if not (max_phase > 0 and math.isfinite(max_phase)):
    raise ValueError(f"max_phase must be a finite number > 0, got {max_phase}")
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> LRUParams:
    _kit.check_input_size(input_size)
    draw = _kit.draw_dtype(dtype)
    k_nu, k_th, k_b, k_c, k_d = jax.random.split(key, 5)
    u1 = jax.random.uniform(k_nu, (N,), draw)
    u2 = jax.random.uniform(k_th, (N,), draw)
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(max_phase * u2)
    gamma_log = jnp.log(jnp.sqrt(1 - jnp.abs(jnp.exp(-jnp.exp(nu_log))) ** 2))
    b_re, b_im = jax.random.normal(k_b, (2, N, input_size), draw) / math.sqrt(2 * input_size)
    c_re, c_im = jax.random.normal(k_c, (2, H, N), draw) / math.sqrt(N)
    skip = jax.random.normal(k_d, (min(input_size, H),), draw)
    d = jnp.zeros((input_size, H), draw).at[jnp.arange(skip.size), jnp.arange(skip.size)].set(skip)
    arrays = (nu_log, theta_log, gamma_log, b_re, b_im, c_re, c_im, d)
    return LRUParams(*(a.astype(dtype) for a in arrays))

  def real_of(dtype: Any) -> Any:
    """The real dtype a step in ``dtype`` computes in: at least float32 (complex64)."""
    return jnp.finfo(_complex_dtype(dtype)).dtype

  def readout(params: LRUParams, h: Array, xd: Array, out: Any) -> Array:
    real = xd.dtype
    y = jnp.real(h) @ params.c_re.astype(real).T - jnp.imag(h) @ params.c_im.astype(real).T
    return (y + xd).astype(out)

  def project(params: LRUParams, x: Array) -> Array:
    """``x (..., I) -> (..., 2N + H)``: the input term's real and imaginary parts, ``x d``, in
    the step's dtype."""
    out = jnp.result_type(x, params.d)
    real = real_of(out)
    bu = _input(params, x, real)
    xd = x.astype(real) @ params.d.astype(real)
    return jnp.concatenate([jnp.real(bu), jnp.imag(bu), xd], axis=-1).astype(out)

  def recur(params: LRUParams, h: Array, px: Array) -> tuple[Array, Array, Any]:
    real = real_of(px.dtype)
    bu_re, bu_im, xd = jnp.split(px.astype(real), [N, 2 * N], axis=-1)
    lam = jnp.reshape(_lam(params, real), (1,) * (h.ndim - 1) + (N,))
    h = lam * h + jax.lax.complex(bu_re, bu_im)
    return h, readout(params, h, xd, px.dtype), ()

  def read(params: LRUParams, h: Array, x: Array) -> Array:
    out = jnp.result_type(x, params.d)
    real = real_of(out)
    return readout(params, h, x.astype(real) @ params.d.astype(real), out)

  def affine(params: LRUParams, xs: Array) -> Affine:
    real = real_of(jnp.result_type(xs, params.d))
    b = _input(params, xs, real)
    return Affine(jnp.broadcast_to(_lam(params, real), b.shape), b)

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> Array:
    return jnp.zeros((*tuple(batch_shape), N), _complex_dtype(dtype))

  return _kit.build(
    "lru",
    H,
    title=DISPLAY_NAMES["lru"],
    init=init,
    project=project,
    recur=recur,
    options=LRUOptions(state_size=N, r_min=r_min, r_max=r_max, max_phase=max_phase),
    initial_carry=initial_carry,
    affine=affine,
    read=read,
    init_only=("r_min", "r_max", "max_phase"),
  )


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"lru": "LRU"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (lru,)
