"""Summaries of a curve over time (pure): the number a reader looks for in a gradient's profile.

:func:`gradient_horizon` (how far back the gradient reaches), :func:`near_share` and
:func:`far_share` (how much of it the near and far steps hold) and :func:`decay_rate` (the
factor per step back). A curve is ``(T,)`` or one per batch element ``(T, *batch)``, time
first, entry ``t`` the value at step ``t`` (so ``curve[::-1][d]`` is ``d`` steps back).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from gatejax._jit import bounded_jit

__all__ = ["decay_rate", "far_share", "gradient_horizon", "near_share"]

#: A curve over time, time first: ``(T,)`` or one per batch element ``(T, *batch)``.
Curve = Float[ArrayLike, "time *batch"]


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
