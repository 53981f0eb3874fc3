r"""Lyapunov exponents of a cell driven by its inputs.

A cell run over a sequence is a driven map, :math:`c_t = f_t(c_{t-1}) = \mathrm{step}(\theta,
c_{t-1}, x_t)`. Its Lyapunov exponents are the average exponential rates at which it stretches
or shrinks small perturbations of the carry, direction by direction:

.. math::

  \lambda_i = \lim_{T \to \infty} \frac{1}{T} \log \sigma_i\big(J_T \cdots J_2 J_1\big),
  \qquad J_t = \frac{\partial f_t}{\partial c}(c_{t-1}),

in natural log per step. The largest says whether the recurrence forgets its past
(:math:`\lambda_1 < 0`: perturbations, and gradients through many steps, shrink as
:math:`e^{\lambda_1 t}`) or amplifies it (:math:`\lambda_1 > 0`, chaos). It also predicts
how the parallel Newton runner (:func:`gatejax.parallel_scan`) will fare: the conditioning
of its linear solves, and so the number of sweeps it needs, degrades as :math:`\lambda_1`
grows past zero (Gonzalez et al., "Predictability enables parallelization of nonlinear state
space models", 2025).

The product of Jacobians over- or underflows within a few dozen steps, so the exponents are
computed by the QR method (Benettin et al. 1980; for RNNs, Engelken, Wolf & Abbott 2023):
push an orthonormal frame :math:`Q` of ``k`` tangent vectors through each step,
:math:`Q \leftarrow J_t Q` (``k`` Jacobian-vector products, never the Jacobian itself),
re-orthonormalise, :math:`J_t Q = Q' R_t`, and average :math:`\log |\mathrm{diag}\, R_t|`.
Memory is :math:`O(n k)` per sequence (``n`` the flattened carry size), whatever ``T``.

Every function takes ``(cell, params, xs)`` and ``carry``, ``lengths`` with the meaning of
:func:`gatejax.scan`: the map starts from the initial carry, and a step past a sequence's
length is not taken (the carry holds) and not counted. The first ``transient`` steps are run
but not counted, so the frame can align with the dynamics before the averaging starts.
Half-precision cells step in their own dtype; the frame, its QR and the averages are kept in
float32. A carry with an integer leaf (a step counter) is refused, naming the leaf: it has no
tangent direction, and the exponents of the floating leaves alone would silently describe
another map.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

import gatejax.run.flat as flat
import gatejax.run.prepare as prepare
from gatejax import _validate
from gatejax._jit import bounded_jit

__all__ = ["largest_lyapunov_exponent", "lyapunov_exponents"]

Params = Any
Carry = Any


def _check_transient(transient: Any, steps: int) -> int:
  if steps == 0:
    raise ValueError("xs must hold at least one time step to average over, got 0")
  if isinstance(transient, bool) or not isinstance(transient, int | np.integer):
    raise TypeError(f"transient must be an int >= 0, got {type(transient).__name__}")
  if not 0 <= transient < steps:
    raise ValueError(
      f"transient must lie in [0, {steps - 1}] (fewer than the {steps} time steps of xs, "
      f"so that some step is counted), got {transient}"
    )
  return int(transient)


def _check_k(k: Any, n: int) -> int:
  if k is None:
    return n
  if isinstance(k, bool) or not isinstance(k, int | np.integer):
    raise TypeError(f"k must be None or an int, got {type(k).__name__}")
  if not 1 <= k <= n:
    raise ValueError(f"k must lie in [1, {n}] (the flattened carry's size), got {k}")
  return int(k)


def _flat_problem(
  cell: Any, carry: Carry, xs: Array, lengths: Array | None
) -> tuple[Any, Array, Array, Array, Any]:
  """``(f, c0 (B, n), xs (T, B, I), lengths (B,), batch_shape)``: the batch flattened to ``B``."""
  steps, batch_shape = xs.shape[0], xs.shape[1:-1]
  batch = int(np.prod(batch_shape))
  template, _ = flat.per_sequence(carry, len(batch_shape))
  f = flat.flat_step(cell, flat.unflattener(template))
  c0 = flat.flatten(
    jax.tree.map(lambda leaf: leaf.reshape((batch, *leaf.shape[len(batch_shape) :])), carry), 1
  )
  # A padded input never enters a derivative (gatejax.run.prepare), so NaN there stays harmless.
  xs = prepare.clean(xs, lengths)
  if lengths is None:
    lengths = jnp.full((batch,), steps, jnp.int32)
  lengths = lengths.reshape((batch,)).astype(jnp.int32)
  return f, c0, xs.reshape((steps, batch, xs.shape[-1])), lengths, batch_shape


@bounded_jit(static_argnames=("cell", "k", "transient"))
def _qr_exponents(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  *,
  k: int,
  transient: int,
) -> Array:
  f, c0, xs, lengths, batch_shape = _flat_problem(cell, carry, xs, lengths)
  n = c0.shape[-1]
  time = jnp.arange(xs.shape[0], dtype=jnp.int32)
  # The frame, its QR and the sums run in at least float32: LAPACK has no half-precision
  # QR, and a sum over many steps needs more than bfloat16's 8 bits. The products J_t Q are
  # taken in the carry's dtype (a JVP's tangent has the primal's dtype).
  work = flat.work_dtype(c0.dtype)

  def one(c0: Array, xs: Array, length: Array) -> Array:
    def body(state: tuple[Array, Array, Array, Array], inputs: tuple[Array, Array]) -> Any:
      c, q, logs, count = state
      t, x = inputs
      valid = t < length
      new, jvp = jax.linearize(lambda c: f(params, c, x, valid), c)
      stretched = jax.vmap(jvp, in_axes=1, out_axes=1)(q.astype(c.dtype))  # J_t Q, k products
      q_new, r = jnp.linalg.qr(stretched.astype(work))
      counted = valid & (t >= transient)
      growth = jnp.log(jnp.abs(jnp.diagonal(r)))
      q = jnp.where(valid, q_new, q)
      logs = logs + jnp.where(counted, growth, jnp.zeros_like(growth))
      return (new, q, logs, count + counted.astype(jnp.int32)), None

    frame = jnp.eye(n, k, dtype=work)
    state = (c0, frame, jnp.zeros((k,), work), jnp.zeros((), jnp.int32))
    (_, _, logs, count), _ = jax.lax.scan(body, state, (time, xs))
    mean = logs / jnp.maximum(count, 1).astype(logs.dtype)
    mean = jnp.where(count > 0, mean, jnp.full_like(mean, jnp.nan))
    return -jnp.sort(-mean)

  exps = jax.vmap(one, (0, 1, 0))(c0, xs, lengths)
  return exps.reshape((*batch_shape, k)).astype(c0.dtype)


@bounded_jit(static_argnames=("cell", "transient"))
def _tangent_exponent(
  cell: Any, params: Params, xs: Array, carry: Carry, lengths: Array | None, *, transient: int
) -> Array:
  f, c0, xs, lengths, batch_shape = _flat_problem(cell, carry, xs, lengths)
  n = c0.shape[-1]
  time = jnp.arange(xs.shape[0], dtype=jnp.int32)
  work = flat.work_dtype(c0.dtype)

  def one(c0: Array, xs: Array, length: Array) -> Array:
    def body(state: tuple[Array, Array, Array, Array], inputs: tuple[Array, Array]) -> Any:
      c, v, log_sum, count = state
      t, x = inputs
      valid = t < length
      new, jv = jax.jvp(lambda c: f(params, c, x, valid), (c,), (v.astype(c.dtype),))
      log_norm, unit = _log_norm(jv.astype(work))
      counted = valid & (t >= transient)
      # A direction the step annihilates (norm 0) gives -inf and keeps the old vector.
      v = jnp.where(valid & jnp.isfinite(log_norm), unit, v)
      log_sum = log_sum + jnp.where(counted, log_norm, jnp.zeros_like(log_norm))
      return (new, v, log_sum, count + counted.astype(jnp.int32)), None

    v0 = jnp.full((n,), 1 / np.sqrt(n), work)
    state = (c0, v0, jnp.zeros((), work), jnp.zeros((), jnp.int32))
    (_, _, log_sum, count), _ = jax.lax.scan(body, state, (time, xs))
    mean = log_sum / jnp.maximum(count, 1).astype(log_sum.dtype)
    return jnp.where(count > 0, mean, jnp.full_like(mean, jnp.nan))

  exps = jax.vmap(one, (0, 1, 0))(c0, xs, lengths).reshape(batch_shape)
  return exps.astype(c0.dtype)


def _log_norm(v: Array) -> tuple[Array, Array]:
  """``(log ‖v‖, v / ‖v‖)``, neither under- nor overflowing: the squares are taken after an
  exact scaling by ``2^-e``, ``e`` the binary exponent of the largest ``|v_i|`` (a norm of
  1e-20 or 1e20 has squares outside float32's range). ``-inf`` for ``v = 0``."""
  largest = jnp.max(jnp.abs(v))
  usable = (largest > 0) & jnp.isfinite(largest)
  e = jnp.where(usable, jnp.frexp(jnp.where(usable, largest, 1))[1], 0)
  scaled = jnp.ldexp(v, -e)
  norm = jnp.linalg.norm(scaled)
  unit = scaled / jnp.where(norm > 0, norm, 1)
  return jnp.log(norm) + e.astype(v.dtype) * np.log(2.0).astype(v.dtype), unit


def lyapunov_exponents(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  k: int | None = None,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  transient: int = 0,
) -> Float[Array, "*batch k"]:
  r"""The ``k`` largest Lyapunov exponents of the driven map, per sequence, by the QR method.

  .. math::

    J_t Q_{t-1} = Q_t R_t, \qquad
    \lambda_i = \frac{1}{|S|} \sum_{t \in S} \log |(R_t)_{ii}|,

  with :math:`Q_0` the first ``k`` columns of the identity (the flattened carry's first
  ``k`` components), :math:`J_t Q` formed by ``k`` Jacobian-vector products of ``step``
  (``jax.linearize``), and :math:`S` the counted steps: each sequence's valid steps
  (``t < length``) from ``transient`` on. Natural log per step, sorted descending.

  Closed forms: an RNN with identity activation and :math:`W_h = \rho Q` (``Q`` orthogonal)
  gives every exponent :math:`\log\rho`; with :math:`W_h` diagonal and ``k`` the full carry,
  the sorted :math:`\log |w_{ii}|`. The starting frame matters only where it is not generic:
  with a diagonal :math:`W_h` and ``k < n``, the frame spans the first ``k`` coordinates,
  which the map never leaves, so the result is their exponents, not the ``k`` largest.

  Edge cases: a sequence with no counted step (``length <= transient``) gets ``nan``; a
  direction the map annihilates (a zero singular value, a dead unit) gets ``-inf``.

  Cost: one scan over time carrying the carry and the ``n × k`` frame: ``k`` JVPs and one
  ``n × k`` QR per step, :math:`O(nk)` memory per sequence (no Jacobian is stored, at any
  step). :func:`largest_lyapunov_exponent` needs one JVP and no QR.

  Args:
    cell: any cell (SPEC §3b).
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    k: how many exponents; default all (the flattened carry's size: ``H``, ``2H`` for an
      LSTM).
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    transient: the number of first steps run but not averaged, in ``[0, time)``.

  Returns:
    ``(*batch, k)`` exponents, descending.

  Raises:
    TypeError: ``k`` or ``transient`` is not an int; a carry leaf is not floating point (an
      integer leaf, a step counter, has no tangent; the message names it); the other
      arguments as :func:`gatejax.scan`.
    ValueError: ``k`` is not in ``[1, n]``, or ``transient`` not in ``[0, time)``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rnn(3, activation=lambda a: a)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> params = params._replace(w_h=jnp.diag(jnp.array([0.5, -2.0, 1.0])))
    >>> lam = gj.dynamics.lyapunov_exponents(cell, params, jnp.ones((50, 2)))
    >>> jnp.round(lam, 4)                         # sorted log|w_ii|
    Array([ 0.6931,  0.    , -0.6931], dtype=float32)
  """
  call = prepare.prepare(cell, params, xs, carry, lengths)
  xs, carry, lengths = call.xs, call.carry, call.lengths
  _validate.float_carry(carry, "lyapunov_exponents")
  _, n = flat.per_sequence(carry, xs.ndim - 2)
  k = _check_k(k, n)
  transient = _check_transient(transient, xs.shape[0])
  if math.prod(xs.shape[1:-1]) == 0:
    return jnp.zeros((*xs.shape[1:-1], k), jnp.result_type(*jax.tree.leaves(flat.to_real(carry))))
  return _qr_exponents(cell, params, xs, carry, lengths, k=k, transient=transient)


def largest_lyapunov_exponent(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  transient: int = 0,
) -> Float[Array, "*batch"]:
  r"""The largest Lyapunov exponent, by propagating one tangent vector (renormalised each step).

  .. math::

    v_t = \frac{J_t v_{t-1}}{\lVert J_t v_{t-1} \rVert}, \qquad
    \lambda_1 = \frac{1}{|S|} \sum_{t \in S} \log \lVert J_t v_{t-1} \rVert,

  from :math:`v_0 = (1, \dots, 1)/\sqrt n`, every carry component excited so that no
  coordinate subspace (a diagonal :math:`W_h`) can hide the leading direction; ``S`` as in
  :func:`lyapunov_exponents`. One Jacobian-vector product per step and :math:`O(n)`
  memory: the cheap choice for a large carry. It agrees with
  ``lyapunov_exponents(..., k=1)`` whenever both starting vectors are generic; each converges
  as :math:`O(1/T)` plus the transient of the starting vector.

  Args:
    cell: any cell (SPEC §3b).
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    transient: the number of first steps run but not averaged, in ``[0, time)``.

  Returns:
    ``(*batch,)`` exponents (``nan`` for a sequence with no counted step).

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rnn(3, activation=lambda a: a)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> params = params._replace(w_h=jnp.diag(jnp.array([0.5, -2.0, 1.0])))
    >>> lam = gj.dynamics.largest_lyapunov_exponent(cell, params, jnp.ones((400, 2)))
    >>> bool(jnp.abs(lam - jnp.log(2.0)) < 1e-2)
    True
  """
  call = prepare.prepare(cell, params, xs, carry, lengths)
  xs, carry, lengths = call.xs, call.carry, call.lengths
  _validate.float_carry(carry, "largest_lyapunov_exponent")
  transient = _check_transient(transient, xs.shape[0])
  if math.prod(xs.shape[1:-1]) == 0:
    return jnp.zeros(xs.shape[1:-1], jnp.result_type(*jax.tree.leaves(flat.to_real(carry))))
  return _tangent_exponent(cell, params, xs, carry, lengths, transient=transient)
