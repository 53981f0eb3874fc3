"""gatejax.dynamics against closed forms and a full-Jacobian reference.

The reference is written here, independently of the library's scan: per sequence and step,
the whole Jacobian by ``jax.jacrev`` of ``cell.step`` (carry flattened by ``ravel_pytree``),
then NumPy: ``Q ← J Q``, ``np.linalg.qr``, ``log |diag R|`` summed over the counted steps
(Benettin et al. 1980), and one tangent vector renormalised each step for the largest.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gatejax as gj
from gatejax import dynamics
from registry import chaotic_rnn, make, normal, random_params
from user_cells import Counting, DictCell

H, I, T = 3, 2, 12
LENGTHS = (12, 6, 2)
TRANSIENT = 2  # the third sequence has no counted step: nan
TOL = {"float64": 1e-8, "float32": 1e-4}


@functools.cache
def cell_of(name):
  return DictCell(H) if name == "dict" else make(name, H)


def problem(name, dtype):
  cell = cell_of(name)
  params = random_params(cell, 0, I, dtype=dtype, scale=0.5)
  rng = np.random.default_rng(1)
  xs = normal(rng, (T, len(LENGTHS), I), dtype)
  shapes = jax.eval_shape(lambda: cell.initial_carry((len(LENGTHS),), dtype))
  carry = jax.tree.map(lambda s: normal(rng, s.shape, dtype, 0.5), shapes)
  return cell, params, xs, carry, jnp.asarray(LENGTHS, jnp.int32)


def reference(cell, params, xs, carry, k):
  """Per sequence: (the k QR exponents, the tangent-vector exponent), by full Jacobians."""
  qr_out, tangent_out = [], []
  _, unravel = ravel_pytree(jax.tree.map(lambda leaf: leaf[0], carry))
  flat_step = jax.jit(lambda v, x: ravel_pytree(cell.step(params, unravel(v), x)[0])[0])
  jacobian = jax.jit(jax.jacrev(flat_step))
  for b, length in enumerate(LENGTHS):
    c, _ = ravel_pytree(jax.tree.map(lambda leaf, b=b: leaf[b], carry))
    n = c.shape[0]
    q, v = np.eye(n)[:, :k], np.full(n, 1 / np.sqrt(n))
    logs, log_norms = np.zeros(k), 0.0
    for t in range(length):
      J = np.asarray(jacobian(c, xs[t, b]), np.float64)
      c = flat_step(c, xs[t, b])
      q, r = np.linalg.qr(J @ q)
      v = J @ v
      if t >= TRANSIENT:
        logs += np.log(np.abs(np.diag(r)))
        log_norms += np.log(np.linalg.norm(v))
      v = v / np.linalg.norm(v)
    counted = length - TRANSIENT
    qr_out.append(np.sort(logs / counted)[::-1] if counted > 0 else np.full(k, np.nan))
    tangent_out.append(log_norms / counted if counted > 0 else np.nan)
  return np.stack(qr_out), np.array(tangent_out)


@pytest.mark.parametrize(
  ("name", "dtype", "k"),
  [
    ("rnn_tanh", "float64", None),
    ("gru_after", "float32", None),
    ("gru_before", "float64", 2),
    ("lstm", "float32", 4),
    ("lstm", "float64", None),
    ("dict", "float64", None),
    ("dict", "float32", 3),
  ],
)
def test_exponents_match_the_full_jacobian_reference(name, dtype, k, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  cell, params, xs, carry, lengths = problem(name, dtype)
  n = sum(leaf[0].size for leaf in jax.tree.leaves(carry))
  want, want_largest = reference(cell, params, xs, carry, n if k is None else k)
  got = dynamics.lyapunov_exponents(
    cell, params, xs, k=k, carry=carry, lengths=lengths, transient=TRANSIENT
  )
  assert got.shape == (len(LENGTHS), n if k is None else k) and got.dtype == xs.dtype
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=TOL[dtype])
  assert np.isnan(want[2]).all()  # length 2 <= transient: nothing counted
  if name in ("lstm", "dict"):
    got = dynamics.largest_lyapunov_exponent(
      cell, params, xs, carry=carry, lengths=lengths, transient=TRANSIENT
    )
    np.testing.assert_allclose(np.asarray(got, np.float64), want_largest, atol=TOL[dtype])


# ---------------------------------------------------------------------------
# Closed forms (SPEC §4b): a linear RNN, J_t = W_hᵀ at every step
# ---------------------------------------------------------------------------


def linear_rnn(w_h, dtype):
  hidden = w_h.shape[0]
  cell = gj.rnn(hidden, activation=lambda a: a)
  params = random_params(cell, 2, I, dtype=dtype)._replace(w_h=jnp.asarray(w_h, dtype))
  return cell, params, normal(np.random.default_rng(3), (T, 2, I), dtype)


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_a_scaled_orthogonal_recurrence_has_every_exponent_log_rho(dtype, tol, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  rho = 0.8
  q, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((4, 4)))
  cell, params, xs = linear_rnn(rho * q, dtype)
  for k in (None, 2):
    lam = dynamics.lyapunov_exponents(cell, params, xs, k=k)
    np.testing.assert_allclose(lam, np.full((2, 4 if k is None else 2), np.log(rho)), atol=tol)
  largest = dynamics.largest_lyapunov_exponent(cell, params, xs)
  np.testing.assert_allclose(largest, np.full(2, np.log(rho)), atol=tol)


def test_a_diagonal_recurrence_has_the_sorted_log_weights(x64):
  w = np.array([0.5, -2.0, 1.5, 0.1])
  cell, params, xs = linear_rnn(np.diag(w), "float64")
  lam = dynamics.lyapunov_exponents(cell, params, xs)
  np.testing.assert_allclose(lam, np.tile(np.sort(np.log(np.abs(w)))[::-1], (2, 1)), atol=1e-12)
  # One tangent from (1, …, 1)/√n: exactly (1/T) log ‖D^T 1‖/‖1‖, → log 2 as T grows.
  largest = dynamics.largest_lyapunov_exponent(cell, params, xs)
  exact = (0.5 * np.log(np.sum(w ** (2 * T))) - 0.5 * np.log(4)) / T
  np.testing.assert_allclose(largest, np.full(2, exact), atol=1e-12)


def test_the_chaotic_rnn_has_a_positive_exponent(x64):
  cell, params, xs, carry = chaotic_rnn()  # tests/run/test_newton.py's non-convergent case
  lam = dynamics.lyapunov_exponents(cell, params, xs, carry=carry, k=1)
  assert bool((lam > 0).all())


# ---------------------------------------------------------------------------
# Memory, errors
# ---------------------------------------------------------------------------


def intermediate_sizes(jaxpr):
  """The sizes of every value in ``jaxpr`` and its sub-jaxprs (scan bodies, jit calls)."""
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      yield int(np.prod(getattr(var.aval, "shape", ())))
    for param in eqn.params.values():
      for sub in param if isinstance(param, tuple | list) else (param,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from intermediate_sizes(inner)


def test_no_array_holds_jacobians_over_time():
  cell, params, xs, carry, lengths = problem("lstm", "float32")
  n = 2 * H
  trace = jax.make_jaxpr(
    lambda p, x, c, ell: dynamics._qr_exponents(cell, p, x, c, ell, k=n, transient=TRANSIENT)
  )(params, xs, carry, lengths)
  # The largest value is per step (frames for the batch), never T of them.
  assert max(intermediate_sizes(trace.jaxpr)) < T * n * n


@pytest.mark.parametrize(
  ("options", "error", "match"),
  [
    ({"k": 0}, ValueError, "k"),
    ({"k": 2 * H + 1}, ValueError, "k"),
    ({"k": 1.5}, TypeError, "k"),
    ({"transient": -1}, ValueError, "transient"),
    ({"transient": T}, ValueError, "transient"),
    ({"transient": True}, TypeError, "transient"),
  ],
)
def test_bad_arguments_are_named(options, error, match):
  cell = cell_of("lstm")
  params = random_params(cell, 0, I)
  with pytest.raises(error, match=match):
    dynamics.lyapunov_exponents(cell, params, jnp.zeros((T, 2, I)), **options)


def test_an_empty_sequence_is_an_error():
  cell = cell_of("lstm")
  with pytest.raises(ValueError, match="time step"):
    dynamics.largest_lyapunov_exponent(cell, random_params(cell, 0, I), jnp.zeros((0, 2, I)))


# ---------------------------------------------------------------------------
# Edges (issue 20)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("s", [1e-20, 1e-19, 1e20, 1e21])
def test_extreme_contraction_and_expansion_give_log_s(s):
  """``W_h = s·I``, float32: every exponent is ``log s``. The tangent vector's norm is taken
  scaled (its square would under- or overflow), as the QR frame's is by LAPACK."""
  cell, params, xs = linear_rnn(s * np.eye(3), "float32")
  want = np.full(2, np.log(s))
  np.testing.assert_allclose(dynamics.largest_lyapunov_exponent(cell, params, xs), want, rtol=1e-6)
  lam = dynamics.lyapunov_exponents(cell, params, xs)
  np.testing.assert_allclose(lam, np.tile(want[:, None], (1, 3)), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_cells_have_exponents(dtype):
  """LAPACK has no half-precision QR: the frame is orthonormalised in float32. The result is
  the float32 one to the half-precision rounding of the step."""
  cell, params, xs, carry, lengths = problem("gru_after", "float32")
  options = {"lengths": lengths, "transient": TRANSIENT}
  want = dynamics.lyapunov_exponents(cell, params, xs, carry=carry, **options)
  want_largest = dynamics.largest_lyapunov_exponent(cell, params, xs, carry=carry, **options)
  half = jax.tree.map(lambda a: a.astype(dtype), (params, xs, carry))
  got = dynamics.lyapunov_exponents(cell, *half[:2], carry=half[2], **options)
  largest = dynamics.largest_lyapunov_exponent(cell, *half[:2], carry=half[2], **options)
  assert got.dtype == largest.dtype == jnp.dtype(dtype)
  tol = 0.1 if dtype == "bfloat16" else 0.02
  np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=tol)
  np.testing.assert_allclose(np.asarray(largest, np.float32), want_largest, atol=tol)


def test_an_empty_batch_has_no_exponents():
  cell = cell_of("lstm")
  params = random_params(cell, 0, I)
  xs = jnp.zeros((T, 0, I))
  assert dynamics.lyapunov_exponents(cell, params, xs, k=2).shape == (0, 2)
  assert dynamics.largest_lyapunov_exponent(cell, params, xs).shape == (0,)


def test_an_integer_carry_leaf_is_refused_by_name():
  cell = Counting(H)
  params = cell.init(jax.random.key(0), I)
  for fn in (dynamics.lyapunov_exponents, dynamics.largest_lyapunov_exponent):
    with pytest.raises(TypeError, match=r"carry leaf count .*int32"):
      fn(cell, params, jnp.zeros((T, 2, I)))


@pytest.mark.parametrize("name", ["lstm", "lru", "min_gru"])
def test_nan_past_lengths_reaches_no_exponent_and_no_gradient(name):
  """What lies past ``lengths`` (NaN, inf) changes neither the exponents nor their gradient
  with respect to the parameters (the one preparation cleans the padding)."""
  cell = make(name, H)
  params = random_params(cell, 0, I, scale=0.3)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  xs = normal(np.random.default_rng(2), (T, len(LENGTHS), I))
  past = jnp.arange(T)[:, None, None] >= lengths[None, :, None]
  dirty = jnp.where(past, jnp.nan, xs)

  def spectrum(p, x):
    lam = dynamics.lyapunov_exponents(cell, p, x, lengths=lengths, transient=0)
    return jnp.sum(lam[:2, 0])  # the largest, of the sequences with counted steps

  for fn in (spectrum, jax.grad(spectrum)):
    got, want = fn(params, dirty), fn(params, jnp.where(past, 0.0, xs))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), got, want)
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(got))
