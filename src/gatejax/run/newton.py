r"""Parallel-in-time evaluation of any cell by Newton's method over the whole sequence.

A run of a cell is the solution of ``T`` coupled equations, one per step,

.. math:: c_t = f_t(c_{t-1}) := \mathrm{step}(\theta, c_{t-1}, x_t), \qquad t = 1 \dots T,

with :math:`c_0` given. :func:`gatejax.scan` solves them one after the other. Newton's method
solves them all at once (DEER, Lim et al., ICLR 2024): from a guess of every carry, linearise
every step around it, :math:`J_t = \partial f_t / \partial c\,(c_{t-1})` (all steps in
parallel), and solve the *linear* recurrence for the correction

.. math:: \delta_t = J_t\, \delta_{t-1} + r_t, \qquad r_t = f_t(c_{t-1}) - c_t, \qquad \delta_0 = 0,

with ``jax.lax.associative_scan`` (composition of affine maps :math:`\delta \mapsto J\delta + r`
is associative), in :math:`O(\log T)` depth; then :math:`c \leftarrow c + \delta` and repeat.

* ``"deer"``: the full Jacobian, ``(T, n, n)`` per sequence; quadratic convergence near the
  solution.
* ``"quasi"``: its diagonal only (quasi-DEER, Gonzalez et al., NeurIPS 2024): ``O(T n)``
  memory and elementwise scans, linear convergence.
* ``"elk"``: damped steps (ELK, Gonzalez et al., NeurIPS 2024): the filtered means of a
  linear-Gaussian state-space model (dynamics :math:`\delta_t = J_t \delta_{t-1} + r_t + w_t`,
  :math:`w_t \sim N(0, I)`, observations :math:`0 = \delta_t + v_t`, :math:`v_t \sim N(0,
  I/\lambda)`), computed with a parallel Kalman filter (Särkkä & García-Fernández, IEEE TAC
  2021). The filtered mean at ``t`` is the last block of the Levenberg–Marquardt step of the
  first ``t`` equations, the minimiser of :math:`\sum_{s \le t} \lVert \delta_s - J_s
  \delta_{s-1} - r_s \rVert^2 + \lambda \sum_{s \le t} \lVert\delta_s\rVert^2`: bounded
  where the linearised recurrence blows up, and causal as DEER's step is (no later residual
  moves it). The ELK authors' code takes the filtered means too; the smoothed means (the LM
  step of all ``T`` equations, which gatejax took before) failed on the tanh RNN at gains 2
  and 3 where the filter converges (BENCHMARKS.md).
  ``"quasi-elk"``: the same with the diagonal Jacobian (all covariances diagonal).
  Default damping: ``λ = 1e-3`` for ``"elk"``, ``0.1`` for ``"quasi-elk"``
  (``DEFAULT_DAMPING``, chosen by measurement).

After ``k`` sweeps the first ``k`` steps are exact, whatever the Jacobian approximation: a step
whose input carry is exact and whose correction is applied undamped comes out exact (its
residual was computed at the exact input, and the corrections before it are zero). So
``"deer"`` and ``"quasi"`` reach the sequential result after at most ``T`` sweeps in exact
arithmetic, and usually after far fewer: Newton's convergence is quadratic once the guess is
close, and a contracting recurrence forgets the error of a far-away guess. A sweep may
overflow (a product of many Jacobians of norm above 1 at a poor first guess, or a step that
overflows at a wild guess): the run goes on, with the guess from the first non-finite step on
reset (NaN to 0, clipped to ±``CLIP``, the reference DEER's rule), and the steps before it
untouched, so the guarantee stands; :class:`NewtonInfo` counts such sweeps. A cell that is
linear in its carry is solved by the first sweep; a cell that offers
``cell.affine(params, xs)`` (:class:`gatejax.affine.Affine`, ``c_t = a_t · c_{t-1} + b_t``) is
solved by one :func:`gatejax.affine.solve` without any Jacobian.

Gradients are implicit (``jax.custom_vjp``): at the solution, the adjoint
:math:`\lambda_t = g_t + J_{t+1}^\top \lambda_{t+1}` is one reverse associative scan, and the
parameter, input and initial-carry cotangents are one ``jax.vjp`` of ``step`` over all steps at
once; nothing differentiates through the iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

import gatejax.run.flat as flat
import gatejax.run.prepare as prepare
from gatejax import _validate, affine, protocol
from gatejax._jit import bounded_jit

__all__ = ["METHODS", "NewtonInfo", "default_tol", "parallel_scan"]

Params = Any
Carry = Any

#: The ``method`` values of :func:`parallel_scan`.
METHODS = ("deer", "quasi", "elk", "quasi-elk")
DAMPED = ("elk", "quasi-elk")

#: The default ELK damping λ per method (the observation precision of the filter's
#: state-space model, ``1 / sigmasq`` in the ELK code), chosen by measurement on the DEER/ELK
#: benchmarks (BENCHMARKS.md, "Newton against the reference implementations"): for ``"elk"``,
#: 1e-3 converges on the tanh RNN at gains 0.5–3 in 3–54 sweeps (DEER-like; λ ≤ 1e-4 is no
#: faster) and on Lorenz-96 in about 157 with no overflow, where 1e-4 fails within T and 1e-2
#: needs 280; the diagonal ``"quasi-elk"`` needs more damping on Lorenz-96 (λ ≤ 1e-2 fails
#: within T, 0.1 converges in about 585) and costs almost nothing for it on the RNNs.
DEFAULT_DAMPING = {"elk": 1e-3, "quasi-elk": 1e-1}

#: Where a sweep overflows, the guess from that step on is clipped to ±CLIP (and NaN set to
#: 0) before the next sweep: the bound of the reference DEER (machine-discovery/deer,
#: ``deer_iter.py``, ``clip_ytnext``), small enough that a step at the clipped guess stays
#: finite (a Lorenz-96 Dopri5 step), far above any carry a gated cell holds. Half precision
#: gets the square root of its largest number instead (256 for float16).
CLIP = 1e8


class NewtonInfo(NamedTuple):
  r"""How a :func:`parallel_scan` run went, per batch element.

  Attributes:
    iterations: the number of Newton sweeps (linearise, solve, update) applied: 0 when the
      first guess (the initial carry at every step) already solves the sequence (length 0,
      say), 1 for a cell linear in its carry, and always 1 for a cell with
      ``affine`` (one solve, no sweep).
    residual: :math:`\max_{t,i} |c_{t,i} - \mathrm{step}(c_{t-1}, x_t)_i| / \max(1, |c_{t,i}|)`
      at the returned carries (the flattened carry, components ``i``): absolute where a
      component is at most 1 in magnitude, relative above; ``inf`` when a carry, a step's
      value or an output is not finite (NaN included: it is never maxed away).
    converged: ``residual <= tol``, so every returned carry and output is finite: a
      sequence reported converged equals :func:`gatejax.scan`'s run to the tolerance.
    overflows: the number of sweeps whose result was not finite somewhere (an overflow of
      the linearised recurrence, or a step that overflows at the new guess). The run does not
      stop there: from the first step whose residual is not finite on, the guess is reset
      (NaN to 0, the rest clipped to ``CLIP``), as the reference DEER does, and Newton
      goes on; the steps before it are kept exactly.
  """

  # Each of shape ``batch``; plain ``Array`` annotations, because the docs render these
  # fields' types as text, where jaxtyping's "*batch" would open an emphasis.
  iterations: Array
  residual: Array
  converged: Array
  overflows: Array


def default_tol(dtype: Any) -> float:
  r"""The residual tolerance :func:`parallel_scan` uses by default for carries of ``dtype``.

  ``1e-12`` for float64, ``1e-6`` for float32 and ``8 eps`` for half precision. The residual
  of a converged run sits at a few ``ulp`` of the carry (measured: 1–3e-7 in float32 for GRU
  and LSTM, H up to 64, T = 1000), so each default is reached by every run that converges,
  and it lies far enough below SPEC's agreement with :func:`gatejax.scan` (``1e-8``,
  ``1e-4``) to leave room for the amplification of a residual by the steps after it: the
  error is, to first order, at most :math:`\sum_s \lVert J_t \cdots J_{s+1} \rVert\,
  \mathrm{tol}`, a small multiple of ``tol`` for a contracting cell (and DEER's last sweep,
  converging quadratically, usually lands far below ``tol``).
  """
  bits = jnp.finfo(dtype).bits
  return {64: 1e-12, 32: 1e-6}.get(bits, 8 * float(jnp.finfo(dtype).eps))


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def _check_method(method: Any) -> str:
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  return method


def _positive(value: Any, name: str) -> float:
  if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
    raise TypeError(f"{name} must be a positive float, got {type(value).__name__}")
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"{name} must be a positive finite float, got {value!r}")
  return float(value)


def _check_max_iter(max_iter: Any, steps: int, method: str) -> int:
  if max_iter is None:
    # Undamped sweeps are exact after T (see the module docstring); damped ones converge
    # linearly near the solution and get twice that.
    return max(steps, 1) * (2 if method in DAMPED else 1)
  if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
    raise TypeError(f"max_iter must be an int >= 1, got {type(max_iter).__name__}")
  if not 1 <= max_iter <= _INT32_MAX:
    raise ValueError(f"max_iter must be an int in [1, 2**31 - 1] (int32 sweeps), got {max_iter}")
  return int(max_iter)


_INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------------------
# Linear recurrences by associative scan
# ---------------------------------------------------------------------------


class _Ops(NamedTuple):
  """Matrix algebra on full ``(..., n, n)`` Jacobians or on their diagonals ``(..., n)``."""

  mm: Callable[[Array, Array], Array]  # A @ B
  mv: Callable[[Array, Array], Array]  # A @ v
  t: Callable[[Array], Array]  # Aᵀ
  inv: Callable[[Array], Array]  # A⁻¹
  eye: Callable[[Array], Array]  # identity like A


def _eye_like(a: Array) -> Array:
  return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


FULL = _Ops(
  mm=jnp.matmul,
  mv=lambda a, v: jnp.einsum("...ij,...j->...i", a, v),
  t=lambda a: jnp.swapaxes(a, -1, -2),
  inv=jnp.linalg.inv,
  eye=_eye_like,
)
DIAG = _Ops(mm=jnp.multiply, mv=jnp.multiply, t=lambda a: a, inv=jnp.reciprocal, eye=jnp.ones_like)


def _affine_scan(ops: _Ops, a: Array, b: Array, *, reverse: bool = False) -> Array:
  r"""Solve :math:`x_t = a_t x_{t-1} + b_t` (``x_{-1} = 0``) for all ``t`` at once; time axis 0.

  With ``reverse`` the recurrence runs backwards, :math:`x_t = a_t x_{t+1} + b_t`.
  """

  def compose(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    # ``first`` is the part applied earlier in the direction of the recurrence (JAX's
    # associative_scan passes the later positions first when reverse=True).
    a1, b1 = first
    a2, b2 = second
    return ops.mm(a2, a1), ops.mv(a2, b1) + b2

  return jax.lax.associative_scan(compose, (a, b), reverse=reverse)[1]


def _kalman_filter(ops: _Ops, jac: Array, r: Array, damping: Array | float) -> Array:
  r"""The step of ELK: the filtered means of the linearised state-space model.

  Model (``t = 1 … T``, time axis 0): :math:`\delta_t = F_t \delta_{t-1} + r_t + w_t`,
  :math:`w_t \sim N(0, I)`, :math:`\delta_0 = 0` exactly, observations :math:`0 = \delta_t +
  v_t`, :math:`v_t \sim N(0, I/\lambda)`. The filtered mean at ``t`` is the last block of the
  minimiser of :math:`\sum_{s \le t} \lVert\delta_s - F_s\delta_{s-1} - r_s\rVert^2 +
  \lambda\sum_{s \le t}\lVert\delta_s\rVert^2`: the Levenberg–Marquardt step of the first
  ``t`` equations, which reads no residual after ``t``. (The smoothed means, the LM step of
  all ``T`` equations, let the large residuals of a poor guess's far steps pull the near ones
  away: measured on the tanh RNN at gains 2 and 3 it failed where the filter converges; see
  BENCHMARKS.md.)

  The associative elements ``(A, b, C, η, Z)`` of Särkkä & García-Fernández (2021, eqs.
  10–14 with H = I, Q = I, R = I/λ, where the gain is the scalar κ = λ/(1+λ)); the first
  element has F = 0 because δ_0 is known.
  """
  s = 1.0 / (1.0 + damping)
  kappa = damping / (1.0 + damping)
  f = jac.at[0].set(0)
  ft = ops.t(f)
  elems = (
    s * f,  # A
    s * r,  # b
    s * ops.eye(f),  # C
    -kappa * ops.mv(ft, r),  # η
    kappa * ops.mm(ft, f),  # Z
  )

  def combine(first: tuple[Array, ...], second: tuple[Array, ...]) -> tuple[Array, ...]:
    a1, b1, c1, e1, z1 = first
    a2, b2, c2, e2, z2 = second
    # One inverse serves both halves: (I + Z₂C₁)⁻¹ = ((I + C₁Z₂)⁻¹)ᵀ as C and Z are symmetric.
    # Its eigenvalues are at least 1 (C₁Z₂ is a product of two PSD matrices), so it is safe.
    m = ops.inv(ops.eye(c1) + ops.mm(c1, z2))
    a2m = ops.mm(a2, m)
    a1mt = ops.mm(ops.t(a1), ops.t(m))
    a = ops.mm(a2m, a1)
    b = ops.mv(a2m, b1 + ops.mv(c1, e2)) + b2
    c = ops.mm(ops.mm(a2m, c1), ops.t(a2)) + c2
    e = ops.mv(a1mt, e2 - ops.mv(z2, b1)) + e1
    z = ops.mm(ops.mm(a1mt, z2), a1) + z1
    return a, b, c, e, z

  return jax.lax.associative_scan(combine, elems)[1]


# ---------------------------------------------------------------------------
# Newton over one sequence
# ---------------------------------------------------------------------------


class _Config(NamedTuple):
  """The static part of a solve (hashable: a ``custom_vjp`` non-differentiable argument)."""

  f: Callable[..., Array]  # flat.flat_step(cell, unravel)
  method: str


class _Limits(NamedTuple):
  """The numeric options, traced, so that changing them compiles nothing new."""

  tol: Array  # scalar, the carry's dtype
  max_iter: Array  # int32 scalar
  damping: Array  # scalar, the carry's dtype


def _jacobians(
  cfg: _Config, params: Params, prev: Array, xs: Array, valid: Array, *, diagonal: bool
) -> Array:
  """Per step ``∂f_t/∂c`` at ``prev`` (``(T, n, n)``), or its diagonal (``(T, n)``)."""
  n = prev.shape[-1]
  _, lin = jax.linearize(lambda c: jax.vmap(cfg.f, (None, 0, 0, 0))(params, c, xs, valid), prev)
  basis = jnp.eye(n, dtype=prev.dtype)
  if not diagonal:
    cols = jax.vmap(lambda e: lin(jnp.broadcast_to(e, prev.shape)))(basis)  # (n_in, T, n_out)
    return jnp.transpose(cols, (1, 2, 0))

  def entry(e: Array) -> Array:
    # A few columns at a time keep memory at O(T n), the point of the diagonal method.
    return jnp.sum(lin(jnp.broadcast_to(e, prev.shape)) * e.reshape(1, n), axis=-1)

  return jax.lax.map(entry, basis, batch_size=min(n, 16)).T


def _shift(c0: Array, cs: Array) -> Array:
  """``(c_0, …, c_{T-1})``: each step's input carry."""
  return jnp.concatenate([c0[None], cs[:-1]])


def _step_residuals(cs: Array, fs: Array) -> Array:
  """Per step ``max_i |fs - cs| / max(1, |cs|)``, ``(T,)``; ``inf`` where a value is not finite.

  Absolute where a carry component is at most 1 in magnitude (every ``h`` of a tanh cell),
  relative above: an LSTM memory cell of magnitude 30 cannot be computed to better than
  ``ulp(30)``, so an absolute float32 test would never pass there. Non-finite values become
  ``inf`` *before* the maximum: XLA:CPU's max ignores NaN, so a NaN left in would read as 0.
  """
  scale = jnp.maximum(jnp.abs(cs), jnp.ones_like(cs))
  error = jnp.abs(fs - cs) / scale
  error = jnp.where(jnp.isfinite(cs) & jnp.isfinite(fs) & ~jnp.isnan(error), error, jnp.inf)
  return jnp.max(error, axis=-1, initial=0.0)


def _residual(cs: Array, fs: Array) -> Array:
  """The largest of :func:`_step_residuals`: ``inf`` if any carry or step value is not finite."""
  return jnp.max(_step_residuals(cs, fs), initial=0.0)


def _clip_bound(dtype: Any) -> float:
  return min(CLIP, float(np.sqrt(float(jnp.finfo(dtype).max))))


def _sanitise(cs: Array, fs: Array) -> tuple[Array, Array]:
  """The guess with its overflowed part reset, and whether anything was.

  From the first step whose residual is not finite on (and the carry just before it, which a
  step may have overflowed from), NaN becomes 0 and everything is clipped to ±CLIP; the steps
  before stay as they are, so the steps a sweep made exact stay exact.
  """
  bad = ~jnp.isfinite(_step_residuals(cs, fs))
  bad = bad | jnp.concatenate([bad[1:], jnp.zeros((1,), bool)])
  tail = jax.lax.cummax(bad.astype(jnp.int32), axis=0) > 0
  bound = _clip_bound(cs.dtype)
  reset = jnp.clip(jnp.where(jnp.isnan(cs), jnp.zeros_like(cs), cs), -bound, bound)
  return jnp.where(tail[:, None], reset, cs), jnp.any(bad)


# (sweeps, carries, step outputs, residual, overflows)
_State = tuple[Array, Array, Array, Array, Array]


def _newton(
  cfg: _Config, limits: _Limits, params: Params, xs: Array, valid: Array, c0: Array
) -> tuple[Array, Array, Array, Array]:
  """Newton sweeps for one sequence: ``(carries (T, n), iterations, residual, overflows)``."""
  f_all = jax.vmap(cfg.f, (None, 0, 0, 0))
  diagonal = cfg.method in ("quasi", "quasi-elk")
  ops = DIAG if diagonal else FULL
  damped = cfg.method in DAMPED
  work = flat.work_dtype(c0.dtype)

  def sweep(state: _State) -> _State:
    k, cs, fs, _, overflows = state
    prev = _shift(c0, cs)
    jac = _jacobians(cfg, params, prev, xs, valid, diagonal=diagonal).astype(work)
    r = (fs - cs).astype(work)
    damping = limits.damping.astype(work)
    delta = _kalman_filter(ops, jac, r, damping) if damped else _affine_scan(ops, jac, r)
    new_cs = cs + delta.astype(cs.dtype)
    # An overflowing sweep (a linearised recurrence that blows up at a poor guess) does not
    # end the run: its overflowed part is reset and Newton goes on, so the guarantee (the
    # first k steps exact after k undamped sweeps) still brings it home within T sweeps.
    new_cs, overflowed = _sanitise(new_cs, f_all(params, _shift(c0, new_cs), xs, valid))
    new_fs = f_all(params, _shift(c0, new_cs), xs, valid)
    new_res = _residual(new_cs, new_fs)
    return k + 1, new_cs, new_fs, new_res, overflows + overflowed.astype(jnp.int32)

  def unfinished(state: _State) -> Array:
    k, _, _, res, _ = state
    return (k < limits.max_iter) & ~(res <= limits.tol)

  cs = jnp.broadcast_to(c0, (xs.shape[0], c0.shape[-1]))
  fs = f_all(params, _shift(c0, cs), xs, valid)
  zero = jnp.zeros((), jnp.int32)
  k, cs, _, res, overflows = jax.lax.while_loop(
    unfinished, sweep, (zero, cs, fs, _residual(cs, fs), zero)
  )
  return cs, k, res, overflows


def _newton_batch(
  cfg: _Config, limits: _Limits, params: Params, xs: Array, valid: Array, c0: Array
) -> tuple[Array, Array, Array, Array]:
  """:func:`_newton` for ``B`` independent sequences: ``xs (T, B, I)``, ``c0 (B, n)``."""
  one = partial(_newton, cfg, limits)
  return jax.vmap(one, (None, 1, 1, 0), (1, 0, 0, 0))(params, xs, valid, c0)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(
  cfg: _Config, limits: _Limits, params: Params, xs: Array, valid: Array, c0: Array
) -> tuple[Array, Array, Array, Array]:
  """All carries ``(T, B, n)`` of ``B`` sequences, with their sweeps, residuals, overflows."""
  return _newton_batch(cfg, limits, params, xs, valid, c0)


def _solve_fwd(
  cfg: _Config, limits: _Limits, params: Params, xs: Array, valid: Array, c0: Array
) -> tuple[tuple[Array, Array, Array, Array], tuple[Any, ...]]:
  out = _newton_batch(cfg, limits, params, xs, valid, c0)
  return out, (params, xs, valid, c0, out[0])


def _solve_bwd(cfg: _Config, saved: tuple[Any, ...], cotangents: Any) -> tuple[Any, ...]:
  params, xs, valid, c0, cs = saved
  g = cotangents[0]  # the counts and the residual carry no gradient
  prev = jnp.concatenate([c0[None], cs[:-1]])  # (T, B, n)
  jac = jax.vmap(lambda p, x, v: _jacobians(cfg, params, p, x, v, diagonal=False), (1, 1, 1), 1)(
    prev, xs, valid
  )  # (T, B, n, n)
  # λ_t = g_t + J_{t+1}ᵀ λ_{t+1}: a reverse linear recurrence in the transposed Jacobians.
  a = jnp.concatenate([FULL.t(jac[1:]), jnp.zeros_like(jac[:1])])
  lam = _affine_scan(FULL, a, g, reverse=True)
  steps = jax.vmap(jax.vmap(cfg.f, (None, 0, 0, 0)), (None, 0, 0, 0))
  _, vjp = jax.vjp(lambda p, c, x: steps(p, c, x, valid), params, prev, xs)
  g_params, g_prev, g_xs = vjp(lam)
  return None, g_params, g_xs, None, g_prev[0]


_solve.defvjp(_solve_fwd, _solve_bwd)


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------


def _order(lengths: Array, steps: int, reverse: bool) -> Array:
  """Per sequence, the input position read at each step, ``(B, T)``.

  Forward: ``t``. Reverse: ``length - 1 - t`` for the valid steps and ``t`` for the padding,
  a permutation that is its own inverse, so the same gather puts outputs back in place.
  """
  time = jnp.arange(steps, dtype=jnp.int32)[None, :]
  if not reverse:
    return jnp.broadcast_to(time, (lengths.shape[0], steps))
  lengths = lengths[:, None]
  return jnp.where(time < lengths, lengths - 1 - time, time)


def _gather(a: Array, order: Array) -> Array:
  """``a[order[b, t], b]`` for ``a`` of shape ``(T, B, ...)``."""
  return jax.vmap(lambda seq, o: seq[o], (1, 0), 1)(a, order)


@bounded_jit(static_argnames=("cell", "method", "reverse"))
def _run(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  limits: _Limits,
  *,
  method: str,
  reverse: bool,
) -> tuple[Carry, Array, NewtonInfo]:
  steps, batch_shape = xs.shape[0], xs.shape[1:-1]
  batch = math.prod(batch_shape)
  # A padded input never enters the computation, not even a derivative (gatejax.run.prepare):
  # a NaN there would meet a zero cotangent in the step's derivative, and 0 · NaN = NaN.
  xs = prepare.clean(xs, lengths)
  template, _ = flat.per_sequence(carry, len(batch_shape))
  unravel = flat.unflattener(template)
  c0 = flat.flatten(
    jax.tree.map(lambda leaf: leaf.reshape((batch, *leaf.shape[len(batch_shape) :])), carry), 1
  )
  xs = xs.reshape((steps, batch, xs.shape[-1]))
  if lengths is None:
    lengths = jnp.full((batch,), steps, jnp.int32)
  lengths = lengths.reshape((batch,)).astype(jnp.int32)
  order = _order(lengths, steps, reverse)
  xs_p = _gather(xs, order)
  valid = jnp.arange(steps, dtype=jnp.int32)[:, None] < lengths[None, :]  # (T, B)
  f = flat.flat_step(cell, unravel)

  affine_fn = protocol.affine_of(cell)
  if affine_fn is not None:
    cs = _affine_solve(cell, affine_fn, params, xs_p, valid, carry, batch_shape)
    iterations = jnp.ones((batch,), jnp.int32)
    overflows = jnp.zeros((batch,), jnp.int32)
    prev = jnp.concatenate([c0[None], cs[:-1]])
    fs = jax.vmap(jax.vmap(f, (None, 0, 0, 0)), (None, 0, 0, 0))(params, prev, xs_p, valid)
    residual = jax.vmap(_residual, (1, 1))(cs, fs)
  else:
    out = _solve(_Config(f=f, method=method), limits, params, xs_p, valid, c0)
    cs, iterations, residual, overflows = cast(tuple[Array, Array, Array, Array], out)
    prev = jnp.concatenate([c0[None], cs[:-1]])

  def output(c: Array, x: Array) -> Array:
    return cell.step(params, unravel(c), x)[1]

  ys = jax.vmap(jax.vmap(output, (0, 0)), (0, 0))(prev, xs_p)
  ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
  # The outputs are checked too: a step may output what overflows beside a finite carry.
  finite_ys = jax.lax.stop_gradient(jnp.all(jnp.isfinite(ys), axis=(0, 2)))
  ys = _gather(ys, order).reshape((steps, *batch_shape, ys.shape[-1]))
  final = jax.vmap(unravel)(cs[-1])
  final = jax.tree.map(lambda leaf: leaf.reshape((*batch_shape, *leaf.shape[1:])), final)
  residual = jax.lax.stop_gradient(residual)
  residual = jnp.where(finite_ys, residual, jnp.full_like(residual, jnp.inf))
  info = NewtonInfo(
    iterations=iterations.reshape(batch_shape),
    residual=residual.reshape(batch_shape),
    converged=(residual <= limits.tol).reshape(batch_shape),
    overflows=overflows.reshape(batch_shape),
  )
  return final, ys, info


def _affine_solve(
  cell: Any,
  affine_fn: Callable[..., Any],
  params: Params,
  xs: Array,
  valid: Array,
  carry: Carry,
  batch_shape: tuple[int, ...],
) -> Array:
  """The carries of a cell affine in its carry, from ``cell.affine``: one exact solve.

  ``xs`` is ``(T, B, input)`` in the order the sequences are read (see :func:`_order`),
  ``valid`` ``(T, B)``; returns the flattened carries ``(T, B, n)``.
  """
  batch = xs.shape[1]
  c0 = jax.tree.map(lambda leaf: leaf.reshape((batch, *leaf.shape[len(batch_shape) :])), carry)
  aff = affine.check(affine_fn(params, xs), c0, xs.shape[0], f"{protocol.describe(cell)}.affine")
  cs = affine.solve(affine.mask(aff, valid), c0)
  return flat.flatten(cs, 2)


def parallel_scan(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  method: str = "deer",
  tol: float | None = None,
  max_iter: int | None = None,
  damping: float | None = None,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
) -> tuple[Carry, Float[Array, "time *batch hidden"], NewtonInfo]:
  r"""Evaluate a cell over a sequence by Newton's method in parallel over time; as :func:`gatejax.scan`.

  Newton's method on the system :math:`c_t = \mathrm{step}(\theta, c_{t-1}, x_t)`,
  :math:`t = 1 \dots T`: each sweep linearises every step at the current guess (in parallel)
  and solves the linear recurrence for the correction with ``jax.lax.associative_scan``,
  until the residual :math:`\max_t \lVert c_t - \mathrm{step}(\theta, c_{t-1}, x_t)
  \rVert_\infty` (relative where a component exceeds 1, see :class:`NewtonInfo`) is at most
  ``tol`` (see :mod:`gatejax.run.newton` for the methods and references). The first guess is the
  initial carry at every step. Batch elements are solved independently, each with its own
  sweep count. Measured at initialisation (H = 16, T = 100 and 1000, float32/float64): GRU
  and LSTM take 4–6 DEER sweeps, 13–70 quasi-DEER sweeps, 4–14 ELK sweeps.

  Cost per sweep and sequence: ``"deer"``, ``n`` Jacobian-vector products per step (``n`` the
  flattened carry size: ``H``, or ``2H`` for an LSTM), ``T n²`` memory and ``O(T n³)`` work in
  the scan (``O(log T)`` depth); ``"quasi"``, the same products but ``T n`` memory and
  elementwise scans; ``"elk"``/``"quasi-elk"``, a Kalman filter (a few times the scan
  work). The linear solves run in at least float32 (LAPACK has no half-precision kernels). A
  cell with ``cell.affine(params, xs)`` (``c_t = a_t · c_{t-1} + b_t`` for every step,
  :class:`gatejax.affine.Affine`) is solved exactly by one associative scan whatever
  ``method`` (``iterations`` is 1).

  Gradients (reverse mode) are implicit: one reverse associative scan of the adjoint
  :math:`\lambda_t = g_t + J_{t+1}^\top\lambda_{t+1}` at the solution (full Jacobians,
  ``T n²`` memory, for every method) and one ``jax.vjp`` of ``step`` over all steps; forward
  mode (``jax.jvp``) is not supported. The gradient is that of the sequential recurrence at
  the returned carries, so it is exact when the run converged.

  Convergence is tested on every returned value: the residual is ``inf`` where a carry or a
  step's value is not finite (found before any maximum, as XLA:CPU's max skips NaN), and an
  output that is not finite makes the sequence not converged. A sweep that overflows does not
  end the run (see :mod:`gatejax.run.newton`): on ELK's Lorenz-96 benchmark (T = 1,000, float64)
  DEER converges after 127 sweeps, 108 of which overflowed somewhere.

  Args:
    cell: any cell (SPEC §3b): ``hidden_size``, ``init``, ``initial_carry``, ``step``.
    params: the cell's parameters.
    xs: inputs ``(time, *batch, input_size)``.
    method: ``"deer"`` (full Jacobian), ``"quasi"`` (its diagonal), ``"elk"`` (damped by a
      Kalman filter) or ``"quasi-elk"`` (both).
    tol: the residual (:class:`NewtonInfo`) at which a sequence counts as converged;
      default :func:`default_tol` of the carry dtype (``1e-12`` float64, ``1e-6`` float32).
    max_iter: the most sweeps per sequence; default ``T`` for ``"deer"`` and ``"quasi"``,
      ``2T`` for the damped methods. ``"deer"`` and ``"quasi"`` are exact after ``T``
      sweeps in exact arithmetic (each sweep fixes at least one more step from the start, as
      argued in :mod:`gatejax.run.newton`), so a run that needs ``T`` is no faster than
      :func:`gatejax.scan`; ELK's damped sweeps have no such bound.
    damping: ELK's :math:`\lambda` (only for ``"elk"``/``"quasi-elk"``); default ``1e-3``
      for ``"elk"`` and ``0.1`` for ``"quasi-elk"`` (``DEFAULT_DAMPING``).
      Larger is steadier and slower; :math:`\lambda \to 0` is DEER.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: as in :func:`gatejax.scan`: steps at ``t >= length`` hold the carry and output
      zeros; the returned carry is the carry after the last valid step.
    reverse: as in :func:`gatejax.scan`: read each sequence from its last valid step back to
      its first; ``ys[t]`` is still the output at input position ``t``.

  Returns:
    ``(carry, ys, info)``: ``carry`` and ``ys`` as :func:`gatejax.scan` returns them (the
    outputs are ``step``'s at the solution), and a :class:`NewtonInfo` with per batch element
    ``iterations``, ``residual``, ``converged`` and ``overflows``. A run that did not reach
    ``tol`` within ``max_iter`` sweeps (a chaotic recurrence, say), or whose carries or
    outputs are not all finite, has ``converged == False``; ``converged == True`` means a
    finite result equal to :func:`gatejax.scan`'s to the tolerance. What lies past
    ``lengths`` reaches neither the result nor any gradient (NaN included).

  Raises:
    TypeError: ``xs``, ``params``, ``carry`` or ``lengths`` has the wrong type or dtype; a
      carry leaf is not floating point (an integer leaf, a step counter, has no derivative
      for Newton's linearisation: the message names it); ``tol``, ``max_iter`` or
      ``damping`` is not a number; ``cell.step`` returns a carry of another structure or
      dtype.
    ValueError: a shape, a length or an option (``method``, ``tol``, ``max_iter``,
      ``damping``) is wrong; the message names it.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs = jax.random.normal(jax.random.key(1), (50, 2, 3))
    >>> carry, ys, info = gj.parallel_scan(cell, params, xs)
    >>> _, ys_seq = gj.scan(cell, params, xs)
    >>> bool(jnp.max(jnp.abs(ys - ys_seq)) < 1e-4), bool(info.converged.all())
    (True, True)
    >>> info.iterations.shape
    (2,)
  """
  method = _check_method(method)
  # Every argument checked at trace time, as gj.scan checks them, the carry filled in.
  call = prepare.prepare(cell, params, xs, carry, lengths)
  xs, carry, lengths = call.xs, call.carry, call.lengths
  _validate.float_carry(carry, "parallel_scan")
  dtype = jnp.result_type(*jax.tree.leaves(flat.to_real(carry)))  # of the real carry vector
  tol = default_tol(dtype) if tol is None else _positive(tol, "tol")
  steps = xs.shape[0]
  max_iter = _check_max_iter(max_iter, steps, method)
  if damping is not None and method not in DAMPED:
    raise ValueError(f"damping applies to method='elk' or 'quasi-elk', not method={method!r}")
  damping = DEFAULT_DAMPING.get(method, 1.0) if damping is None else _positive(damping, "damping")
  batch_shape = xs.shape[1:-1]
  if steps == 0 or math.prod(batch_shape) == 0:
    # Nothing to solve: the initial carry is the result (of no step, or of no sequence).
    info = NewtonInfo(
      iterations=jnp.zeros(batch_shape, jnp.int32),
      residual=jnp.zeros(batch_shape, dtype),
      converged=jnp.ones(batch_shape, bool),
      overflows=jnp.zeros(batch_shape, jnp.int32),
    )
    return carry, jnp.zeros((steps, *batch_shape, cell.hidden_size), dtype), info
  if protocol.affine_of(cell) is not None:
    method = "deer"  # solved by one scan whatever the method: one compiled function for all
  limits = _Limits(
    tol=jnp.asarray(tol, dtype),
    max_iter=jnp.asarray(max_iter, jnp.int32),
    damping=jnp.asarray(damping, dtype),
  )
  return _run(cell, params, xs, carry, lengths, limits, method=method, reverse=bool(reverse))
