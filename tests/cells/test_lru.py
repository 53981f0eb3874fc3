"""gj.lru against the LRU of Orvieto et al. 2023 (App. A = minimal-LRU ``LRU.__call__``) as
transcribed in tests/official_steps.py, in float64 through every runner, its ring
initialisation, and its closed forms: the Jacobian ``diag(λ)`` (a scaled rotation of each
state's real and imaginary parts) and the Lyapunov exponents ``log|λ_j|``, each twice.

Newton's method, the Lyapunov exponents and the analysis' Jacobian sweep take the complex
carry as its real and imaginary parts (gatejax.run.flat).
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
import official_steps as ref
from gatejax import analysis, dynamics, protocol, tasks, train
from registry import draw_like, normal, random_params

H, N, I = 3, 4, 2
T, B = 6, 3
LENGTHS = np.array([6, 0, 4])
VALID = np.arange(T)[:, None] < LENGTHS[None, :]
CELL = gj.lru(H, state_size=N, r_min=0.6, r_max=0.95)


def problem(seed=0, dtype=np.float64):
  """Every parameter drawn but ``nu_log`` (|λ| on the ring, so the state remembers), a random
  complex carry and real inputs."""
  params = random_params(CELL, seed, I, dtype=dtype)
  params = params._replace(nu_log=CELL.init(jax.random.key(seed), I, dtype=dtype).nu_log)
  rng = np.random.default_rng(seed + 1)
  xs = normal(rng, (T, B, I), dtype)
  complex_dtype = np.complex128 if np.dtype(dtype) == np.float64 else np.complex64
  carry = draw_like(rng, jax.ShapeDtypeStruct((B, N), complex_dtype))
  return params, xs, carry


def official_padded(params, xs, carry, lengths, reverse=False):
  """The oracle: each sequence through the transcription alone, on its valid steps only."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  xs, carry = np.asarray(xs, np.float64), np.asarray(carry, np.complex128)
  finals, ys = [], np.zeros((*xs.shape[:2], H))
  for b, length in enumerate(lengths):
    if not length:
      finals.append(carry[b])
      continue
    seq = xs[:length, b][::-1] if reverse else xs[:length, b]
    final, y = ref.lru_official(p, seq[:, None], carry[b][None])
    finals.append(final[0])
    ys[:length, b] = y[::-1, 0] if reverse else y[:, 0]
  return np.stack(finals), ys


def assert_close(actual, expected, tol):
  """Equal to ``tol`` relative to ``max(1, |expected|)`` (complex leaves compared as such)."""
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    a, e = np.asarray(a), np.asarray(e)
    assert a.shape == e.shape and np.iscomplexobj(a) == np.iscomplexobj(e)
    err = np.max(np.abs(a - e) / np.maximum(1.0, np.abs(e)), initial=0.0)
    assert err <= tol, f"largest relative error {err:.3g} > {tol:.3g}"


def loss_of(run):
  def loss(params, xs, carry):
    final, ys = run(params, xs, carry)
    weights = jnp.linspace(0.5, 1.5, ys.shape[0], dtype=ys.dtype)[:, None, None]
    return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(jnp.abs(final) ** 2)

  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


def scan_run(impl):
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  return lambda p, x, c: gj.scan(CELL, p, x, carry=c, lengths=lengths, impl=impl)


def poisoned(xs):
  return jnp.where(jnp.asarray(VALID)[..., None], xs, jnp.nan)


# ---------------------------------------------------------------------------
# Against the official step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_equals_the_official_step_float64(reverse, x64):
  params, xs, carry = problem()
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  expected = official_padded(params, xs, carry, LENGTHS, reverse)
  for impl in ("fused", "associative"):
    got = gj.scan(CELL, params, xs, carry=carry, lengths=lengths, reverse=reverse, impl=impl)
    assert_close(got, expected, 1e-12)


def test_parallel_scan_equals_the_official_step_float64(x64):
  params, xs, carry = problem()
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  final, ys, info = gj.parallel_scan(CELL, params, xs, carry=carry, lengths=lengths)
  assert_close((final, ys), official_padded(params, xs, carry, LENGTHS), 1e-12)
  np.testing.assert_array_equal(info.iterations, 1)


def test_float32_error_against_the_official_step():
  params, xs, carry = problem(dtype=np.float32)
  got = gj.scan(CELL, params, xs, carry=carry, lengths=jnp.asarray(LENGTHS, jnp.int32))
  assert got[0].dtype == jnp.complex64 and got[1].dtype == jnp.float32
  assert_close(got, official_padded(params, xs, carry, LENGTHS), 2e-6)


def test_fast_paths_equal_the_loop_in_values_and_gradients(x64):
  """The associative scan and the fused VJP against autodiff of the step loop, with lengths
  (the complex carry's gradient included); NaN in the padding reaches nothing."""
  params, xs, carry = problem(2)
  value, grads = loss_of(scan_run("autodiff"))(params, xs, carry)
  assert grads[2].dtype == jnp.complex128 and not np.any(np.asarray(grads[1])[~VALID])
  for impl in ("associative", "fused"):
    for inputs in (xs, poisoned(xs)):
      got = loss_of(scan_run(impl))(params, inputs, carry)
      chex.assert_trees_all_close(got, (value, grads), rtol=1e-12, atol=1e-12)


def test_parallel_scan_gradients_equal_the_loop(x64):
  params, xs, carry = problem(2)
  newton = lambda p, x, c: gj.parallel_scan(
    CELL, p, x, carry=c, lengths=jnp.asarray(LENGTHS, jnp.int32)
  )[:2]
  got = loss_of(newton)(params, xs, carry)
  chex.assert_trees_all_close(got, loss_of(scan_run("autodiff"))(params, xs, carry), rtol=1e-12)


# ---------------------------------------------------------------------------
# Initialisation and options
# ---------------------------------------------------------------------------


def test_init_is_the_ring_init():
  hidden, state, inputs = 48, 512, 64
  cell = gj.lru(hidden, state_size=state, r_min=0.2, r_max=0.99)
  params = cell.init(jax.random.key(0), inputs)
  ref.check_init(
    params, ref.lru_official_init(inputs, hidden, state_size=state, r_min=0.2, r_max=0.99)
  )
  # d (open upstream): the official elementwise D ~ N(0, 1) on the diagonal, zeros elsewhere
  d = np.asarray(params.d, np.float64)
  diagonal = np.diagonal(d).copy()
  np.fill_diagonal(d, 0.0)
  assert diagonal.size == hidden and not np.any(d)
  assert ref.ks_statistic(diagonal, ref.normal_cdf(0.0, 1.0)) <= ref.ks_critical(
    diagonal.size, 1e-6
  )
  # the defaults: N = H, the full disc, max_phase 2π (minimal-LRU's is 6.28)
  default = gj.lru(8).init(jax.random.key(1), 8)
  ref.check_init(default, ref.lru_official_init(8, 8))
  assert gj.lru(8).options == (8, 0.0, 1.0, 2 * math.pi)


def test_gamma_log_is_a_trained_parameter(x64):
  """γ starts at sqrt(1 − |λ|²) and then moves by its own gradient (not recomputed from λ)."""
  params, xs, _ = problem(3)
  grad = jax.grad(lambda p: gj.scan(CELL, p, xs)[1].sum())(params)
  assert np.all(np.abs(np.asarray(grad.gamma_log)) > 0)
  moved = params._replace(gamma_log=params.gamma_log + 0.1)
  _, ys = gj.scan(CELL, moved, xs)
  _, ys_expected = ref.lru_official(jax.tree.map(np.asarray, moved), np.asarray(xs))
  assert_close(ys, ys_expected, 1e-12)


def test_carry_precision_follows_the_inputs(x64):
  for dtype, carry in ((jnp.float32, jnp.complex64), (jnp.float64, jnp.complex128)):
    assert CELL.initial_carry((2,), dtype).dtype == carry
  assert CELL.initial_carry((), jnp.bfloat16).dtype == jnp.complex64  # no complex bfloat16


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    ({"state_size": 0}, ValueError, "state_size"),
    ({"r_min": -0.1}, ValueError, "r_min"),
    ({"r_max": 1.5}, ValueError, "r_max"),
    ({"r_min": 0.9, "r_max": 0.5}, ValueError, "r_min"),
    ({"max_phase": 0.0}, ValueError, "max_phase"),
    ({"max_phase": "2pi"}, TypeError, "max_phase"),
  ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
  with pytest.raises(error, match=match):
    gj.lru(H, **kwargs)


# ---------------------------------------------------------------------------
# The protocol, the analysis and the dynamics
# ---------------------------------------------------------------------------


def test_optional_members_agree_with_the_step(x64):
  params, xs, carry = problem(5)
  protocol.check(CELL, params, xs[:3], carry=carry)  # read and affine (complex)


def real_jacobians(params, xs, carry):
  """Per sequence, the step Jacobians of the real map (Re h, Im h) -> (Re h', Im h') by jacrev."""

  def real_step(v, x):
    h, _ = CELL.step(params, jax.lax.complex(v[:N], v[N:]), x)
    return jnp.concatenate([jnp.real(h), jnp.imag(h)])

  jacobian = jax.jit(jax.jacrev(real_step))
  out = []
  for b, length in enumerate(LENGTHS):
    v = jnp.concatenate([jnp.real(carry[b]), jnp.imag(carry[b])])
    steps = []
    for t in range(length):
      steps.append(np.asarray(jacobian(v, xs[t, b])))
      v = real_step(v, xs[t, b])
    out.append(steps)
  return out


def product_norms(steps, o):
  norms = []
  for k in range(T):
    J = np.eye(2 * N)
    for J_t in steps[k:]:
      J = J_t @ J
    norms.append(np.linalg.norm(J, o))
  return np.array(norms)


def test_jacobian_is_a_rotation_per_state_and_its_norms_equal_jacrev(x64):
  params, xs, carry = problem(6)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  lam = np.asarray(CELL.affine(params, xs[:1]).a[0, 0])
  rotation = np.block(
    [[np.diag(lam.real), -np.diag(lam.imag)], [np.diag(lam.imag), np.diag(lam.real)]]
  )
  jacobians = real_jacobians(params, xs, carry)
  for steps in jacobians:
    for J_t in steps:
      np.testing.assert_allclose(J_t, rotation, rtol=1e-14, atol=1e-14)
  for o in (2, "fro"):
    norms = analysis.jacobian_norms(CELL, params, xs, ord=o, carry=carry, lengths=lengths)
    for b, steps in enumerate(jacobians):
      assert_close(norms[:, b], product_norms(steps, o), 1e-12)
  # closed form over a whole sequence: ‖∂h_T/∂h_k‖₂ = max_j |λ_j|^(T − k)
  whole = analysis.jacobian_norms(CELL, params, xs)
  assert_close(whole, np.abs(lam).max() ** (T - np.arange(T))[:, None].repeat(B, 1), 1e-12)


def test_jacobian_norms_by_the_sweep_equal_jacrev(x64):
  params, xs, carry = problem(6)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  swept = analysis.jacobian_norms(
    CELL._replace(affine=None), params, xs, carry=carry, lengths=lengths
  )
  for b, steps in enumerate(real_jacobians(params, xs, carry)):
    assert_close(swept[:, b], product_norms(steps, 2), 1e-12)


def test_contributions_sum_to_the_gradient(x64):
  params, xs, carry = problem(7)
  lengths = jnp.asarray(LENGTHS, jnp.int32)

  def loss_fn(ys, final):
    return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.abs(final) ** 2)

  contrib = analysis.step_contributions(CELL, params, xs, loss_fn, carry=carry, lengths=lengths)
  total = jax.tree.map(lambda c: c.sum(axis=0), contrib)
  run = lambda p: gj.scan(CELL, p, xs, carry=carry, lengths=lengths, impl="autodiff")
  grad = jax.grad(lambda p: loss_fn(*run(p)[::-1]))(params)
  chex.assert_trees_all_close(total, grad, rtol=1e-12, atol=1e-12)


def test_lyapunov_exponents_are_log_abs_lambda_twice(x64):
  """Every state a scaled rotation: its two exponents are log|λ_j| = −exp(nu_log_j), for any
  input (SPEC §3c: a complex leaf as its real and imaginary parts, 2N exponents)."""
  params, xs, carry = problem(8)
  lam = dynamics.lyapunov_exponents(CELL, params, xs, carry=carry, lengths=jnp.asarray([6, 1, 4]))
  expected = np.sort(np.repeat(-np.exp(np.asarray(params.nu_log)), 2))[::-1]
  for b in range(B):
    assert_close(lam[b], expected, 1e-12)


def test_trains():
  task = tasks.adding(6, variable_length=True, min_length=3)
  key = jax.random.key(0)
  result = train.fit(CELL, task, key=key, steps=3, batch_size=8, eval_every=0, progress=False)
  assert not result.history.diverged and all(math.isfinite(x) for x in result.history.loss)
  start = train.init_model(CELL, task, jax.random.split(jax.random.split(key)[0])[0])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params.cell, start.cell)
  assert all(jax.tree.leaves(changed))  # gamma_log included
