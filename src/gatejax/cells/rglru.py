r"""The real-gated linear recurrent unit (RG-LRU) of Griffin and RecurrentGemma.

De et al. 2024, "Griffin: Mixing gated linear recurrences with local attention for efficient
language models", as recurrentgemma 1.0.1's JAX layer ``recurrentgemma/jax/layers.py::RGLRU``
runs it (``only_real=True``). Both gates read only the input, so the step is affine in the
carry with a diagonal multiplier, :math:`h_t = a_t \odot h_{t-1} + b_t`: the cell offers
``affine`` (:func:`gatejax.scan` with ``impl="associative"``, :func:`gatejax.parallel_scan` in
one exact sweep), and its step Jacobian is exactly :math:`\mathrm{diag}(a_t)`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.affine import Affine
from gatejax.cells._kit import Cell

__all__ = ["RGLRUGates", "RGLRUOptions", "RGLRUParams", "rg_lru"]

# recurrentgemma's RGLRU calls sqrt_bound_derivative(1 - a², 1000).
_MAX_SQRT_GRADIENT = 1000.0
# rnn_real_param_init's eps, added to the radius² it draws.
_RING_EPS = 1e-8


class RGLRUParams(NamedTuple):
  """RG-LRU parameters (SPEC §3d); the gate blocks are per head, head-major.

  ``w_x``/``b_x`` make the recurrence's input ``u = x w_x + b_x`` (Griffin's ``linear_x``);
  ``a_param`` is the official ``a_param`` (:math:`\\Lambda`); ``input_gate_*`` and
  ``a_gate_*`` are the official ``BlockDiagonalLinear`` layers' ``w`` and ``b``, unchanged.
  """

  w_x: Float[Array, "input hidden"]
  b_x: Float[Array, " hidden"]
  a_param: Float[Array, " hidden"]
  input_gate_w: Float[Array, "heads head_size head_size"]
  input_gate_b: Float[Array, "heads head_size"]
  a_gate_w: Float[Array, "heads head_size head_size"]
  a_gate_b: Float[Array, "heads head_size"]


class RGLRUGates(NamedTuple):
  """RG-LRU activations of one step: the input gate, the recurrence gate and the decay ``a``
  they make (``a`` keeps the carry; ``sqrt(1 − a²)·gate_x`` writes)."""

  gate_x: Array
  gate_a: Array
  a: Array


class RGLRUOptions(NamedTuple):
  """The options :func:`rg_lru` was called with (``cell.options``)."""

  num_heads: int
  c: float
  min_rad: float
  max_rad: float


@jax.custom_jvp
def _sqrt_bound_derivative(q: Array) -> Array:
  """``sqrt(q)`` whose derivative is evaluated at ``max(q, 1/(4·1000²))``: at most 1000."""
  return jnp.sqrt(q)


@_sqrt_bound_derivative.defjvp
def _sqrt_bound_derivative_jvp(primals: tuple[Array], tangents: tuple[Array]):
  # recurrentgemma's stable_sqrt_bwd as a JVP rule (linear in the tangent, so reverse mode
  # transposes it into the official VJP, and forward mode, which Lyapunov exponents and
  # Newton's linearisations use, works too).
  (q,), (dq,) = primals, tangents
  floor = 1.0 / (4.0 * _MAX_SQRT_GRADIENT**2)
  return jnp.sqrt(q), dq * (0.5 / jnp.sqrt(jnp.maximum(q, floor)))


def _block_diagonal(u: Array, w: Array, b: Array) -> Array:
  """``BlockDiagonalLinear``: ``u (..., NH·D)`` read head by head through ``w (NH, D, D)``."""
  heads, size = w.shape[0], w.shape[-1]
  blocks = u.reshape((*u.shape[:-1], heads, w.shape[1]))
  y = _kit.add_bias(jnp.einsum("...hi,hij->...hj", blocks, w), b)
  return y.reshape((*u.shape[:-1], heads * size))


def _per_unit(v: Array, like: Array) -> Array:
  """``v (H,)`` shaped to broadcast against ``like (..., H)`` (explicitly: no rank promotion)."""
  return jnp.reshape(v, (1,) * (like.ndim - 1) + v.shape)


def _check_radii(min_rad: float, max_rad: float) -> None:
  _kit.check_number("min_rad", min_rad, low=0.0)
  _kit.check_number("max_rad", max_rad, low=0.0)
  if not max_rad < 1.0:
    # radius² + 1e-8 must stay below 1, or softplus⁻¹ of -log(radius) is undefined.
    raise ValueError(f"max_rad must be < 1, got {max_rad}")
  if not min_rad <= max_rad:
    raise ValueError(f"min_rad must be <= max_rad, got min_rad={min_rad}, max_rad={max_rad}")


@_kit.memoized
def rg_lru(
  hidden_size: int,
  *,
  num_heads: int = 1,
  c: float = 8.0,
  min_rad: float = 0.9,
  max_rad: float = 0.999,
) -> Cell:
  r"""RG-LRU (De et al. 2024), equal to recurrentgemma 1.0.1's ``RGLRU.__call__``.

  On the input projection :math:`u_t = x_t W_x + b_x` (Griffin's ``linear_x``; the official
  layer takes ``u`` as its input):

  .. math::

    g^x_t &= \sigma(\mathrm{blockdiag}(u_t;\, W^x, b^x)), \qquad
    g^a_t = \sigma(\mathrm{blockdiag}(u_t;\, W^a, b^a)) \\
    \log a_t &= -c\, g^a_t \odot \mathrm{softplus}(\Lambda) \\
    h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot g^x_t \odot u_t, \qquad y_t = h_t

  with :math:`\Lambda` = ``a_param``, :math:`W^x, b^x` = ``input_gate_w, input_gate_b`` and
  :math:`W^a, b^a` = ``a_gate_w, a_gate_b``, each ``blockdiag`` reading head ``k``'s
  ``H/num_heads`` units of ``u`` through its own square block. :math:`a_t^2` is computed as
  :math:`\exp(2 \log a_t)`, as the official code does.

  Decisions, each where the official code, the paper and a cell part ways:

  * **Sign of** :math:`\Lambda`. The paper writes :math:`a = \sigma(\Lambda)`,
    :math:`a_t = a^{c\, r_t}`; the code computes :math:`\exp(-c\, r_t\, \mathrm{softplus}(\Lambda))
    = \sigma(-\Lambda)^{c\, r_t}`. The parameter follows the code (it is the oracle): the base
    decay is :math:`\exp(-\mathrm{softplus}(\Lambda))`.
  * **Initialisation: the base decay, not** :math:`a^c`, **lies in** ``[min_rad, max_rad]``.
    As the official ``rnn_real_param_init``: :math:`r^2 \sim U(\mathrm{min\_rad}^2,
    \mathrm{max\_rad}^2) + 10^{-8}` (uniform in the area of a ring) and
    :math:`\Lambda = \mathrm{softplus}^{-1}(-\log r)`, so :math:`\exp(-\mathrm{softplus}(\Lambda))
    = r \in [0.9, 0.999]` by default. The paper's text says instead that :math:`a^c` is uniform
    in ``[0.9, 0.999]``; with the code's init, at a closed gate (:math:`r_t = 1`) :math:`a^8`
    spans ``[0.43, 0.992]``. gatejax follows the code. (:math:`\mathrm{softplus}^{-1}(y) =
    \log(\mathrm{expm1}(y))`, where the code writes :math:`\log(e^{y} - 1)`: the same value,
    without the cancellation near ``max_rad``.)
  * **Every step is normalised.** The official layer takes positions and, where a segment
    starts (``segment_pos == 0``), resets: :math:`a = 0` and no :math:`\sqrt{1 - a^2}` factor. A
    cell has no position (a sequence starts from ``carry``, which may hold a previous
    segment's state), so gatejax multiplies by :math:`\sqrt{1 - a_t^2}` at every step; this is
    the official layer at every position but a segment's first.
  * **The square root's derivative is bounded** as the official ``sqrt_bound_derivative``
    (1000): :math:`\frac{d}{dq}\sqrt{q}` is evaluated at :math:`\max(q, 1/(4 \cdot 1000^2))`,
    so the gradient stays finite where :math:`a_t \to 1` (:math:`1 - a_t^2` rounds to 0 in low
    precision). The value is the plain square root; gradients equal the official layer's.
  * **The input projection** ``w_x``, ``b_x`` (not part of the official ``RGLRU``) is
    initialised as Griffin's ``RecurrentBlock.linear_x``: ``variance_scaling(1, "fan_in",
    "normal")``, an untruncated :math:`N(0, 1/I)`, and a zero bias.
  * **Gate weights** as ``BlockDiagonalLinear``: ``variance_scaling(1, "fan_in", "normal")``
    over the ``(NH, D, D)`` kernel, whose fan-in JAX counts as :math:`D \cdot NH = H`, so
    :math:`N(0, 1/H)`; biases zero.
  * The official scan accumulates in float32 whatever the input dtype; the cell computes in
    the dtype of its inputs and parameters (float64 is float64 throughout).

  Args:
    hidden_size: ``H``, the width of ``u``, the carry and ``y``.
    num_heads: the number of diagonal blocks of the two gates; must divide ``H``.
    c: the constant of the decay (8 in the paper and the code), ``> 0``.
    min_rad: the smallest base decay :math:`\exp(-\mathrm{softplus}(\Lambda))` at init.
    max_rad: the largest, ``< 1``.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`RGLRUParams`, an array carry ``h`` of shape
    ``(*batch, H)``, :class:`RGLRUGates` and ``affine``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rg_lru(8, num_heads=2)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.a_gate_w.shape, params.a_gate_b.shape
    ((2, 4, 4), (2, 4))
    >>> base = jnp.exp(-jax.nn.softplus(params.a_param))     # the code's init, not the paper's
    >>> bool((base >= 0.9).all() and (base <= 0.999).all())
    True
    >>> x, h = jnp.ones(3), jnp.full(8, 2.0)
    >>> aff = cell.affine(params, x[None])          # h_t = a_t ⊙ h_{t-1} + b_t: diag(a_t)
    >>> bool(jnp.allclose(cell.step(params, h, x)[0], aff.a[0] * h + aff.b[0]))
    True
  """
  _kit.check_hidden_size(hidden_size)
  head_size = _kit.check_heads(hidden_size, num_heads)
  c = _kit.check_number("c", c)
  if not (c > 0 and math.isfinite(c)):
    raise ValueError(f"c must be a finite number > 0, got {c}")
  _check_radii(min_rad, max_rad)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> RGLRUParams:
    _kit.check_input_size(input_size)
    draw = _kit.draw_dtype(dtype)
    k_x, k_a, k_i, k_g = jax.random.split(key, 4)
    fan_in_normal = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    unif = jax.random.uniform(k_a, (H,), draw)
    radius_sq = unif * (max_rad**2 - min_rad**2) + min_rad**2 + _RING_EPS
    a_real = 0.5 * jnp.log(radius_sq)
    gate_shape = (num_heads, head_size, head_size)
    zeros = jnp.zeros((num_heads, head_size), dtype)
    return RGLRUParams(
      w_x=fan_in_normal(k_x, (input_size, H), draw).astype(dtype),
      b_x=jnp.zeros((H,), dtype),
      a_param=jnp.log(jnp.expm1(-a_real)).astype(dtype),
      input_gate_w=fan_in_normal(k_i, gate_shape, draw).astype(dtype),
      input_gate_b=zeros,
      a_gate_w=fan_in_normal(k_g, gate_shape, draw).astype(dtype),
      a_gate_b=zeros,
    )

  def project(params: RGLRUParams, x: Array) -> Array:
    """``x (..., I) -> (..., 4H)``: ``a``, the normalised input ``b``, ``gate_x``, ``gate_a``."""
    u = _kit.add_bias(x @ params.w_x, params.b_x)
    gate_x = jax.nn.sigmoid(_block_diagonal(u, params.input_gate_w, params.input_gate_b))
    gate_a = jax.nn.sigmoid(_block_diagonal(u, params.a_gate_w, params.a_gate_b))
    log_a = -c * gate_a * _per_unit(jax.nn.softplus(params.a_param), gate_a)
    a, a_squared = jnp.exp(log_a), jnp.exp(2 * log_a)
    b = u * gate_x * _sqrt_bound_derivative(1 - a_squared)
    return jnp.concatenate([a, b, gate_x, gate_a], axis=-1)

  def recur(params: RGLRUParams, h: Array, px: Array) -> tuple[Array, Array, RGLRUGates]:
    a, b, gate_x, gate_a = _kit.split(px, 4)
    h = a * h + b
    return h, h, RGLRUGates(gate_x=gate_x, gate_a=gate_a, a=a)

  def affine(params: RGLRUParams, xs: Array) -> Affine:
    a, b, _, _ = _kit.split(project(params, xs), 4)
    return Affine(a, b)

  return _kit.build(
    "rg_lru",
    H,
    title=DISPLAY_NAMES["rg_lru"],
    init=init,
    project=project,
    recur=recur,
    options=RGLRUOptions(num_heads=num_heads, c=c, min_rad=min_rad, max_rad=max_rad),
    affine=affine,
    gate_names=("gate_x", "gate_a", "a"),
    keep_write=_keep_write,
    init_only=("min_rad", "max_rad"),
  )


def _keep_write(gates: RGLRUGates) -> tuple[Array, Array]:
  return gates.a, jnp.sqrt(1 - gates.a * gates.a) * gates.gate_x


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"rg_lru": "RG-LRU"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (rg_lru,)
