"""gj.parallel_scan against gj.scan, a Python loop over ``step``, and dense linear algebra.

References built here, not by the runner: ``gj.scan`` (``impl="autodiff"``) and its
``jax.vjp`` for the built-in cells; an unrolled Python loop over ``cell.step`` per sequence
(SPEC's oracle) for the user cells; NumPy's dense solve of the Levenberg–Marquardt normal
equations for the Kalman smoother. Sizes are tiny and shared so that few functions compile.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import _jit
from gatejax.run import newton
from registry import NAMES, chaotic_rnn, make, normal, random_params
from user_cells import Counting, DictCell, Lorenz96

H, I, T = 3, 2, 8
LENGTHS = (8, 5, 0)  # full, padded, empty
BATCH = len(LENGTHS)
TOL = {"float64": 1e-8, "float32": 1e-4}  # SPEC §4b, max absolute error


# ---------------------------------------------------------------------------
# User cells (SPEC §3b): frozen dataclasses, not gj.Cell
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DiagonalCell:
  """minGRU-like, affine in its carry, offering ``affine``: ``h' = a ⊙ h + b``."""

  hidden_size: int

  def init(self, key, input_size, *, dtype=jnp.float32):
    k1, k2 = jax.random.split(key)
    shape = (input_size, self.hidden_size)
    return (jax.random.normal(k1, shape, dtype), jax.random.normal(k2, shape, dtype))

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def affine(self, params, xs):
    z = jax.nn.sigmoid(xs @ params[0])
    return gj.Affine(1 - z, z * (xs @ params[1]))

  def step(self, params, carry, x):
    aff = self.affine(params, x)
    h = aff.a * carry + aff.b
    return h, h


USER_CELLS = {"dict": DictCell(H), "diagonal": DiagonalCell(H)}


@functools.cache
def cell_of(name):
  """One cell object per name, so compiled functions are reused across tests."""
  return USER_CELLS[name] if name in USER_CELLS else make(name, H)


def problem(name, dtype, *, scale=0.5, seed=0):
  cell = cell_of(name)
  params = random_params(cell, seed, I, dtype=dtype, scale=scale)
  rng = np.random.default_rng(seed + 1)
  xs = normal(rng, (T, BATCH, I), dtype)
  shapes = jax.eval_shape(lambda: cell.initial_carry((BATCH,), dtype))
  carry = jax.tree.map(lambda s: normal(rng, s.shape, dtype, 0.5), shapes)
  return cell, params, xs, carry, jnp.asarray(LENGTHS, jnp.int32)


def max_error(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def loop_reference(cell, params, xs, carry, lengths, reverse):
  """``cell.step`` over each sequence's valid steps, one sequence at a time (SPEC's oracle)."""
  del lengths  # the Python ints of LENGTHS, so each sequence is cut to its own length
  finals, ys = [], []
  for b, length in enumerate(LENGTHS):
    c = jax.tree.map(lambda leaf, b=b: leaf[b], carry)
    c, y = jax.lax.scan(lambda c, x: cell.step(params, c, x), c, xs[:length, b], reverse=reverse)
    finals.append(c)
    ys.append(jnp.concatenate([y, jnp.zeros((T - length, cell.hidden_size), y.dtype)]))
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *finals), jnp.stack(ys, axis=1)


def scan_reference(cell, params, xs, carry, lengths, reverse):
  return gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse, impl="autodiff")


def parallel(cell, params, xs, carry, lengths, reverse):
  """``gj.parallel_scan`` as a runner: ``((carry, ys), info)``."""
  c, ys, info = gj.parallel_scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
  return (c, ys), info


def with_no_info(reference):
  return lambda *args: (reference(*args), None)


def value_and_vjp(runner, cell, params, xs, carry, cotangent, reverse):
  """``runner``'s ``(carry, ys)``, its info, and the cotangents of ``(params, xs, carry)``."""
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  run = lambda p, x, c: runner(cell, p, x, c, lengths, reverse)
  out, vjp, info = jax.vjp(run, params, xs, carry, has_aux=True)
  return out, vjp(cotangent), info


@functools.partial(jax.jit, static_argnames=("cell", "reverse", "reference"))
def compare(cell, params, xs, carry, *, reverse, reference):
  """Both runs and their VJPs for one random cotangent, in one compiled function."""
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  shapes = jax.eval_shape(lambda: reference(cell, params, xs, carry, lengths, reverse))
  rng = np.random.default_rng(7)
  cotangent = jax.tree.map(lambda s: normal(rng, s.shape, s.dtype), shapes)
  return (
    value_and_vjp(parallel, cell, params, xs, carry, cotangent, reverse),
    value_and_vjp(with_no_info(reference), cell, params, xs, carry, cotangent, reverse),
  )


def assert_equal_runs(got, want, dtype):
  """Values to SPEC's tolerance; gradients (sums over steps) relative to their largest entry."""
  (out, grads, info), (ref_out, ref_grads, _) = got, want
  assert bool(info.converged.all())
  assert jax.tree.structure(out) == jax.tree.structure(ref_out)
  assert max_error(out, ref_out) <= TOL[dtype]
  scale = max(1.0, max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(ref_grads)))
  assert max_error(grads, ref_grads) <= TOL[dtype] * scale


# ---------------------------------------------------------------------------
# Equality with gj.scan: values and gradients
# ---------------------------------------------------------------------------

# Every built-in cell and the dict-carry cell, each dtype and each direction, always with
# lengths; gradients for three of them. Not the full product: each case compiles the runner.
CASES = [
  ("rnn_tanh", "float32", True, False),
  ("gru_after", "float32", True, True),
  ("gru_before", "float64", False, False),
  ("lstm", "float64", False, True),
  ("dict", "float64", True, True),
]


@pytest.mark.parametrize(("name", "dtype", "reverse", "grads"), CASES)
def test_deer_equals_the_sequential_run(name, dtype, reverse, grads, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  cell, params, xs, carry, lengths = problem(name, dtype)
  reference = loop_reference if name in USER_CELLS else scan_reference
  if grads:
    got, want = compare(cell, params, xs, carry, reverse=reverse, reference=reference)
    assert_equal_runs(got, want, dtype)
    return
  c, ys, info = gj.parallel_scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
  want = reference(cell, params, xs, carry, lengths, reverse)
  assert jax.tree.structure((c, ys)) == jax.tree.structure(want)
  assert max_error((c, ys), want) <= TOL[dtype]
  assert info.iterations.shape == info.residual.shape == info.converged.shape == (BATCH,)
  assert bool(info.converged.all()) and bool((info.residual <= newton.default_tol(dtype)).all())
  # Each sweep makes at least one more step exact; the empty sequence needs none.
  iterations = info.iterations.tolist()
  assert 1 <= iterations[0] <= LENGTHS[0] and 1 <= iterations[1] <= LENGTHS[1]
  assert iterations[2] == 0
  # Same shapes, other values and options: nothing compiles again.
  before = _jit.misses()
  gj.parallel_scan(cell, params, xs + 1, carry=carry, lengths=lengths, reverse=reverse, tol=1e-3)
  assert _jit.misses() == before


@pytest.mark.parametrize(
  ("method", "dtype"), [("quasi", "float32"), ("elk", "float64"), ("quasi-elk", "float32")]
)
def test_every_method_equals_the_sequential_run(method, dtype, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  cell, params, xs, carry, lengths = problem("dict", dtype)
  c, ys, info = gj.parallel_scan(cell, params, xs, method=method, carry=carry, lengths=lengths)
  assert bool(info.converged.all())
  assert max_error((c, ys), loop_reference(cell, params, xs, carry, lengths, False)) <= TOL[dtype]


# ---------------------------------------------------------------------------
# Linear in the carry: one sweep
# ---------------------------------------------------------------------------


def test_a_linear_rnn_is_solved_by_one_sweep(x64):
  cell = gj.rnn(H, activation=lambda a: a)
  params = random_params(cell, 3, I, dtype="float64", scale=0.5)
  xs = normal(np.random.default_rng(4), (T, BATCH, I), "float64")
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  c, ys, info = gj.parallel_scan(cell, params, xs, lengths=lengths)
  # One exact solve; the empty sequence is already solved by the first guess.
  assert info.iterations.tolist() == [1, 1, 0]
  assert max_error((c, ys), gj.scan(cell, params, xs, lengths=lengths)) <= 1e-12


def test_an_affine_cell_is_one_scan(x64):
  cell, params, xs, carry, _ = problem("diagonal", "float64")
  got, want = compare(cell, params, xs, carry, reverse=True, reference=loop_reference)
  assert_equal_runs(got, want, "float64")
  assert got[2].iterations.tolist() == [1] * BATCH  # one scan, no Newton sweep


# ---------------------------------------------------------------------------
# Chaos: no convergence, and never a false claim of it
# ---------------------------------------------------------------------------


def test_a_chaotic_rnn_does_not_converge_and_never_claims_to(x64):
  cell, params, xs, carry = chaotic_rnn()
  _, _, info = gj.parallel_scan(cell, params, xs, carry=carry, max_iter=3)
  assert not bool(info.converged.any()) and info.iterations.tolist() == [3, 3]
  assert bool((info.residual > newton.default_tol("float64")).all())
  # Given all T sweeps it may converge; where it says so, it equals the sequential run.
  c, ys, info = gj.parallel_scan(cell, params, xs, carry=carry)
  assert bool(jnp.isfinite(ys).all())
  ref_c, ref_ys = gj.scan(cell, params, xs, carry=carry)
  for b in range(2):
    error = max_error((c[b], ys[:, b]), (ref_c[b], ref_ys[:, b]))
    assert error <= TOL["float64"] if bool(info.converged[b]) else info.residual[b] > 1e-12


# ---------------------------------------------------------------------------
# The linear solvers against dense linear algebra
# ---------------------------------------------------------------------------


def dense_operator(jac):
  """The block lower-bidiagonal matrix L with (L δ)_t = δ_t − J_t δ_{t−1}, δ_0 = 0."""
  steps, n = jac.shape[0], jac.shape[-1]
  big = np.eye(steps * n)
  for t in range(1, steps):
    big[t * n : (t + 1) * n, (t - 1) * n : t * n] = -jac[t]
  return big


@pytest.mark.parametrize("diagonal", [False, True])
def test_the_solvers_match_dense_linear_algebra(diagonal, x64):
  rng = np.random.default_rng(0)
  steps, n, lam = 5, 2, 0.3
  jac = rng.standard_normal((steps, n, n))
  if diagonal:
    jac = jac * np.eye(n)
  r = rng.standard_normal((steps, n))
  ops = newton.DIAG if diagonal else newton.FULL
  arg = np.diagonal(jac, axis1=1, axis2=2) if diagonal else jac
  L = dense_operator(jac)
  newton_step = np.linalg.solve(L, r.ravel()).reshape(steps, n)

  def lm_step(k):
    """The Levenberg–Marquardt step of the first k equations."""
    Lk, rk = L[: k * n, : k * n], r[:k].ravel()
    return np.linalg.solve(Lk.T @ Lk + lam * np.eye(k * n), Lk.T @ rk).reshape(k, n)

  # ELK's step: at t, the last block of the LM step of the first t equations (the filtered
  # mean of the Kalman model).
  filtered = np.stack([lm_step(t + 1)[-1] for t in range(steps)])
  # The reverse recurrence x_t = A_t x_{t+1} + b_t is the forward one on the flipped arrays.
  flipped = np.linalg.solve(dense_operator(jac[::-1]), r[::-1].ravel()).reshape(steps, n)[::-1]

  @jax.jit
  def solvers(a, b):
    return (
      newton._affine_scan(ops, a, b),
      newton._kalman_filter(ops, a, b, lam),
      newton._affine_scan(ops, a, b, reverse=True),
    )

  got = solvers(jnp.asarray(arg), jnp.asarray(r))
  for value, want in zip(got, (newton_step, filtered, flipped), strict=True):
    np.testing.assert_allclose(value, want, atol=1e-12)


# ---------------------------------------------------------------------------
# Edges, errors, compilation
# ---------------------------------------------------------------------------


def test_zero_steps_return_the_initial_carry():
  cell = cell_of("lstm")
  params = random_params(cell, 0, I)
  c, ys, info = gj.parallel_scan(cell, params, jnp.zeros((0, 2, I)))
  assert ys.shape == (0, 2, H) and bool(info.converged.all())
  assert max_error(c, cell.initial_carry((2,))) == 0


@pytest.mark.parametrize(
  ("options", "error", "match"),
  [
    ({"method": "newton"}, ValueError, "method"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"tol": float("nan")}, ValueError, "tol"),
    ({"tol": "small"}, TypeError, "tol"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"max_iter": 2.5}, TypeError, "max_iter"),
    ({"max_iter": True}, TypeError, "max_iter"),
    ({"max_iter": 2**31}, ValueError, "max_iter"),
    ({"damping": 1.0}, ValueError, "damping"),
    ({"method": "elk", "damping": 0.0}, ValueError, "damping"),
    ({"lengths": jnp.array([1, 2])}, ValueError, "lengths"),
    ({"carry": jnp.zeros((BATCH, H + 1))}, ValueError, "carry"),
  ],
)
def test_bad_arguments_are_named(options, error, match):
  cell = cell_of("gru_after")
  params = random_params(cell, 0, I)
  with pytest.raises(error, match=match):
    gj.parallel_scan(cell, params, jnp.zeros((T, BATCH, I)), **options)


@dataclasses.dataclass(frozen=True)
class GrowingCell:
  """A broken cell: its step returns a carry larger than the one it was given."""

  hidden_size: int = 2

  def init(self, key, input_size, *, dtype=jnp.float32):
    return jnp.zeros((input_size, self.hidden_size), dtype)

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def step(self, params, carry, x):
    return jnp.concatenate([carry, carry], axis=-1), carry


def test_a_cell_whose_step_changes_the_carry_is_named():
  cell = GrowingCell()
  with pytest.raises(TypeError, match=r"GrowingCell\(hidden_size=2\)\.step returns a carry leaf"):
    gj.parallel_scan(cell, jnp.zeros((I, 2)), jnp.zeros((T, I)))


def test_a_value_without_the_protocol_is_a_type_error():
  with pytest.raises(TypeError, match="cell"):
    gj.parallel_scan(object(), (), jnp.zeros((T, I)))


# ---------------------------------------------------------------------------
# Honest convergence (issue 20): the DEER/ELK benchmarks
# ---------------------------------------------------------------------------


def tanh_rnn(gain, seed=0, steps=100, dtype="float32"):
  """The DEER/ELK tanh RNN: H = 4, ``W_h = gain · N(0, 1/H)``, unit inputs, zero start.

  Seed 0 contracts at gains 2 and 3 (λ_max ≈ −0.34 and −0.53, measured by
  :func:`gatejax.dynamics.lyapunov_exponents`), yet at gain 3 DEER's first sweep overflows
  float32 (a product of 100 Jacobians of norm ~3 at the first guess).
  """
  hidden = 4
  rng = np.random.default_rng(seed)
  params = gj.RNNParams(
    w_x=normal(rng, (I, hidden), dtype),
    w_h=normal(rng, (hidden, hidden), dtype, gain / hidden**0.5),
    b=jnp.zeros(hidden, dtype),
  )
  return gj.rnn(hidden), params, normal(rng, (steps, 1, I), dtype)


def assert_honest(cell, params, xs, carry, c, ys, info, tol):
  """Where a sequence is reported converged, its result is finite and equals gj.scan's."""
  ref_c, ref_ys = gj.scan(cell, params, xs, carry=carry)
  for b in range(xs.shape[1]):
    if bool(info.converged[b]):
      got = (jax.tree.map(lambda leaf, b=b: leaf[b], c), ys[:, b])
      want = (jax.tree.map(lambda leaf, b=b: leaf[b], ref_c), ref_ys[:, b])
      assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(got))
      assert max_error(got, want) <= tol
    else:
      assert float(info.residual[b]) > 0


def test_lorenz96_is_solved_by_deer_past_its_overflows(x64):
  """ELK's Lorenz-96 (D = 5, float64, one Dopri5 step per time step), here T = 200.

  Before: DEER stopped after its second sweep overflowed (converged=False, error 3e42). The
  reference DEER (clip to ±1e8, NaN → 0, go on) converges (130 sweeps at T = 1,000,
  BENCHMARKS.md); Newton's guarantee is at most T.
  """
  cell = Lorenz96()
  xs = jnp.zeros((200, 1, 1))
  carry = jnp.asarray(cell.attractor_state())[None]
  params = jnp.zeros(())
  c, ys, info = gj.parallel_scan(cell, params, xs, carry=carry)
  assert bool(info.converged[0]) and int(info.iterations[0]) < 200
  assert int(info.overflows[0]) >= 1  # sweeps overflowed, and the run went on
  assert_honest(cell, params, xs, carry, c, ys, info, TOL["float64"])


def test_the_residual_sees_every_nan():
  """XLA:CPU's max over (1000, 5) values with one NaN returned 0.0: the residual said
  "converged" where a step's value was NaN (quasi-DEER on Lorenz-96 at T = 1,000: 3 sweeps,
  2,955 of 5,000 outputs NaN; the end-to-end run is in benchmarks/newton_reference.py)."""
  cs = jnp.zeros((1000, 5))
  for bad in (jnp.nan, jnp.inf):
    fs = cs.at[500, 1].set(bad)
    assert float(jax.jit(newton._residual)(cs, fs)) == float("inf")
    assert float(jax.jit(newton._residual)(fs, cs)) == float("inf")


@dataclasses.dataclass(frozen=True)
class LoudCell:
  """Linear in its carry (one sweep solves it), with an output that overflows: ``exp(50 h)``."""

  hidden_size: int = 2

  def init(self, key, input_size, *, dtype=jnp.float32):
    return jnp.ones((input_size, self.hidden_size), dtype)

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def step(self, params, carry, x):
    h = 0.5 * carry + x @ params
    return h, jnp.exp(50 * h)


def test_a_non_finite_output_is_never_converged():
  cell = LoudCell()
  xs = jnp.full((4, 2, I), 1.0).at[:, 1].set(0.01)  # the first sequence's outputs overflow
  _, ys, info = gj.parallel_scan(cell, jnp.ones((I, 2)), xs)
  assert not bool(jnp.isfinite(ys[:, 0]).all()) and bool(jnp.isfinite(ys[:, 1]).all())
  assert info.converged.tolist() == [False, True]
  assert float(info.residual[0]) == float("inf")


def test_deer_keeps_going_after_an_overflowing_sweep():
  """Gain 3 (λ_max ≈ −0.53): the first sweep overflows float32; the reference DEER, which
  clips and keeps iterating, converges (13 sweeps, BENCHMARKS.md); before, gatejax stopped
  after that first sweep, not converged."""
  cell, params, xs = tanh_rnn(3.0)
  c, ys, info = gj.parallel_scan(cell, params, xs)
  assert bool(info.converged[0]) and int(info.iterations[0]) <= xs.shape[0]
  assert int(info.overflows[0]) >= 1
  assert max_error((c, ys), gj.scan(cell, params, xs)) <= TOL["float32"]


@pytest.mark.parametrize("gain", [2.0, 3.0])
def test_elk_converges_where_the_reference_does(gain):
  """Reference ELK (filtered means) converges in 9 and 71 iterations at gains 2 and 3;
  before, the smoothed means with λ = 1e-3 ran 200 iterations at gain 2 (error 1.99)."""
  cell, params, xs = tanh_rnn(gain)
  c, ys, info = gj.parallel_scan(cell, params, xs, method="elk")
  assert bool(info.converged[0]) and int(info.iterations[0]) <= xs.shape[0]
  assert max_error((c, ys), gj.scan(cell, params, xs)) <= TOL["float32"]


# Every registered cell, each with one method and direction (each case compiles a solver and
# its gradient): the first four cells cover the four methods, the rest the two undamped ones
# (the damped compile slowest); both directions alternate.
PADDING_CASES = [
  (name, newton.METHODS[i if i < 4 else i % 2], bool(i % 2 if i < 4 else i // 2 % 2))
  for i, name in enumerate(NAMES)
]


@pytest.mark.parametrize(("name", "method", "reverse"), PADDING_CASES)
def test_nan_padding_reaches_no_gradient(name, method, reverse):
  """What lies past ``lengths`` (NaN, inf) reaches neither the result nor any gradient: the
  gradients equal those with zero padding (gj.scan's rule, :func:`gatejax.loop.clean_inputs`)."""
  cell = make(name, 2)
  params = random_params(cell, 0, I, scale=0.3)
  lengths = jnp.asarray([4, 2], jnp.int32)
  xs = normal(np.random.default_rng(1), (4, 2, I))
  past = jnp.arange(4)[:, None, None] >= lengths[None, :, None]
  dirty = jnp.where(past, jnp.asarray([jnp.nan, jnp.inf])[None, :, None], xs)
  clean = jnp.where(past, 0.0, xs)

  def loss(p, x):
    c, ys, _ = gj.parallel_scan(cell, p, x, method=method, lengths=lengths, reverse=reverse)
    return jnp.sum(ys**2) + sum(jnp.sum(jnp.abs(leaf) ** 2) for leaf in jax.tree.leaves(c))

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  got, want = grad(params, dirty), grad(params, clean)
  for leaf in jax.tree.leaves(got):
    assert bool(jnp.isfinite(leaf).all())
  assert max_error(got, want) == 0.0


def test_elk_runs_in_half_precision():
  """LAPACK has no bfloat16 kernels: the linear solves run in float32 (as jacobian_norms)."""
  cell = cell_of("gru_after")
  params = random_params(cell, 0, I, dtype="bfloat16")
  xs = normal(np.random.default_rng(1), (T, 2, I), "bfloat16")
  c, ys, info = gj.parallel_scan(cell, params, xs, method="elk")
  assert ys.dtype == jnp.bfloat16 and bool(info.converged.all())
  assert max_error((c, ys), gj.scan(cell, params, xs)) <= 0.05  # a few bf16 ulps below 1


def test_an_empty_batch_gives_empty_results():
  cell = cell_of("lstm")
  params = random_params(cell, 0, I)
  c, ys, info = gj.parallel_scan(cell, params, jnp.zeros((T, 0, I)), method="quasi")
  assert ys.shape == (T, 0, H) and c.h.shape == (0, H)
  assert info.iterations.shape == info.residual.shape == info.converged.shape == (0,)


def test_an_integer_carry_leaf_is_refused_by_name():
  cell = Counting(H)
  params = cell.init(jax.random.key(0), I)
  with pytest.raises(TypeError, match=r"carry leaf count .*int32"):
    gj.parallel_scan(cell, params, jnp.zeros((T, 2, I)))
