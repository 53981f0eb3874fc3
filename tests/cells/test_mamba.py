"""gj.s6 against mamba-ssm's ``selective_scan_ref`` as transcribed in tests/official_steps.py
(and automl/unlocking_state_tracking's negative-eigenvalue variant), in float64 through every
runner, its initialisation against ``Mamba.__init__``, and its closed forms: the Jacobian
``diag(ā_t)`` and the Lyapunov exponents ``mean_t Δ_{t,d} A_{d,n}``.
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
from registry import normal, random_params

H, N, I = 4, 3, 3
T, B = 6, 3
LENGTHS = np.array([6, 0, 4])
VALID = np.arange(T)[:, None] < LENGTHS[None, :]
CELLS = {False: gj.s6(H, state_size=N), True: gj.s6(H, state_size=N, negative_eigenvalues=True)}


def problem(seed=0, dtype=np.float64, negative=False):
  """Every parameter drawn, ``a_log`` and ``dt_proj_b`` as ``init`` draws them (so Δ and A have
  their official scales), a random carry and inputs."""
  cell = CELLS[negative]
  params = random_params(cell, seed, I, dtype=dtype)
  init = cell.init(jax.random.key(seed), I, dtype=dtype)
  params = params._replace(a_log=init.a_log, dt_proj_b=init.dt_proj_b + 1.0)
  rng = np.random.default_rng(seed + 1)
  return cell, params, normal(rng, (T, B, I), dtype), normal(rng, (B, H, N), dtype)


def official_padded(cell, params, xs, carry, lengths, reverse=False):
  """The oracle: each sequence through the transcription alone, on its valid steps only."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  xs, carry = np.asarray(xs, np.float64), np.asarray(carry, np.float64)
  negative = cell.options.negative_eigenvalues
  finals, ys = [], np.zeros((*xs.shape[:2], H))
  for b, length in enumerate(lengths):
    if not length:
      finals.append(carry[b])
      continue
    seq = xs[:length, b][::-1] if reverse else xs[:length, b]
    final, y = ref.s6_official(p, seq[:, None], carry[b][None], negative_eigenvalues=negative)
    finals.append(final[0])
    ys[:length, b] = y[::-1, 0] if reverse else y[:, 0]
  return np.stack(finals), ys


def assert_close(actual, expected, tol):
  """Equal to ``tol`` relative to ``max(1, |expected|)``."""
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    assert a.shape == e.shape
    err = np.max(np.abs(a - e) / np.maximum(1.0, np.abs(e)), initial=0.0)
    assert err <= tol, f"largest relative error {err:.3g} > {tol:.3g}"


def loss_of(run):
  def loss(params, xs, carry):
    final, ys = run(params, xs, carry)
    weights = jnp.linspace(0.5, 1.5, ys.shape[0], dtype=ys.dtype)[:, None, None]
    return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(final**2)

  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


# ---------------------------------------------------------------------------
# Against the official step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("negative", "reverse"), [(False, False), (True, True)])
def test_every_runner_equals_the_official_step_float64(negative, reverse, x64):
  cell, params, xs, carry = problem(negative=negative)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  expected = official_padded(cell, params, xs, carry, LENGTHS, reverse)
  for impl in ("fused", "associative"):
    got = gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse, impl=impl)
    assert_close(got, expected, 1e-12)
  final, ys, info = gj.parallel_scan(
    cell, params, xs, carry=carry, lengths=lengths, reverse=reverse
  )
  assert_close((final, ys), expected, 1e-12)
  np.testing.assert_array_equal(info.iterations, 1)
  if negative:  # the multiplier really leaves (0, 1)
    assert float(jnp.min(cell.affine(params, xs).a)) < 0


def test_float32_error_against_the_official_step():
  cell, params, xs, carry = problem(dtype=np.float32)
  expected = official_padded(cell, params, xs, carry, LENGTHS)
  got = gj.scan(cell, params, xs, carry=carry, lengths=jnp.asarray(LENGTHS, jnp.int32))
  assert_close(got, expected, 5e-6)


def test_fast_paths_equal_the_loop_in_values_and_gradients(x64):
  """The associative scan, the fused VJP and parallel_scan against autodiff of the step loop,
  with lengths; NaN in the padding reaches neither the values nor the gradients of gj.scan."""
  cell, params, xs, carry = problem(2)
  lengths = jnp.asarray(LENGTHS, jnp.int32)

  def scan(impl):
    return lambda p, x, c: gj.scan(cell, p, x, carry=c, lengths=lengths, impl=impl)

  value, grads = loss_of(scan("autodiff"))(params, xs, carry)
  assert not np.any(np.asarray(grads[1])[~VALID])
  poisoned = jnp.where(jnp.asarray(VALID)[..., None], xs, jnp.nan)
  for impl in ("associative", "fused"):
    for inputs in (xs, poisoned):
      got = loss_of(scan(impl))(params, inputs, carry)
      chex.assert_trees_all_close(got, (value, grads), rtol=1e-12, atol=1e-12)
  newton = lambda p, x, c: gj.parallel_scan(cell, p, x, carry=c, lengths=lengths)[:2]
  chex.assert_trees_all_close(loss_of(newton)(params, xs, carry), (value, grads), rtol=1e-12)


# ---------------------------------------------------------------------------
# Initialisation and options
# ---------------------------------------------------------------------------


def uniform_ks(values, bound):
  values = np.asarray(values, np.float64).ravel()
  assert np.all(np.abs(values) <= bound)
  ks = ref.ks_statistic(values, ref.uniform_cdf(-bound, bound))
  assert ks <= ref.ks_critical(values.size, 1e-6), f"KS {ks:.3g}"


def test_init_is_mambas():
  hidden, state, inputs = 512, 4, 64
  cell = gj.s6(hidden, state_size=state)
  params = cell.init(jax.random.key(0), inputs)
  ref.check_init(params, ref.s6_official_init(inputs, hidden, state_size=state))
  rank = math.ceil(hidden / 16)
  assert cell.options.dt_rank == rank == params.dt_proj_w.shape[0]
  # what SPEC leaves open, as mamba: dt_init="random", torch Linear defaults (fan-in bounds)
  uniform_ks(params.dt_proj_w, rank**-0.5)
  uniform_ks(params.x_proj, hidden**-0.5)
  uniform_ks(params.w_x, inputs**-0.5)
  # mamba's own rank for the same scan width H = d_inner = 2·d_model is ceil(H / 32)
  assert gj.s6(hidden, dt_rank=math.ceil(hidden / 32)).init(jax.random.key(0), 2).x_proj.shape == (
    hidden,
    16 + 2 * 16,
  )


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    ({"state_size": 0}, ValueError, "state_size"),
    ({"state_size": 2.0}, TypeError, "state_size"),
    ({"dt_rank": 0}, ValueError, "dt_rank"),
    ({"negative_eigenvalues": 1}, TypeError, "negative_eigenvalues"),
  ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
  with pytest.raises(error, match=match):
    gj.s6(H, **kwargs)


# ---------------------------------------------------------------------------
# The protocol, the analysis and the dynamics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("negative", [False, True])
def test_optional_members_agree_with_the_step(negative, x64):
  cell, params, xs, carry = problem(5, negative=negative)
  protocol.check(cell, params, xs[:3], carry=carry)  # read (C recomputed from x) and affine


def test_jacobian_is_diag_a_bar_and_its_norms_equal_jacrev(x64):
  cell, params, xs, carry = problem(6)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  a = np.asarray(cell.affine(params, xs).a).reshape(T, B, H * N)
  step = jax.jit(lambda c, x: cell.step(params, c, x)[0])
  jacobian = jax.jit(lambda c, x: jax.jacrev(step)(c, x).reshape(H * N, H * N))
  norms = {
    o: analysis.jacobian_norms(cell, params, xs, ord=o, carry=carry, lengths=lengths)
    for o in (2, "fro")
  }
  for b, length in enumerate(LENGTHS):
    c, steps = carry[b], []
    for t in range(length):
      steps.append(np.asarray(jacobian(c, xs[t, b])))
      np.testing.assert_allclose(steps[-1], np.diag(a[t, b]), rtol=1e-14, atol=1e-14)
      c = step(c, xs[t, b])
    for k in range(T):
      J = np.eye(H * N)
      for J_t in steps[k:]:
        J = J_t @ J
      for o in (2, "fro"):
        assert_close(norms[o][k, b], np.linalg.norm(J, o), 1e-12)


def test_contributions_sum_to_the_gradient(x64):
  cell, params, xs, carry = problem(7)
  lengths = jnp.asarray(LENGTHS, jnp.int32)

  def loss_fn(ys, final):
    return jnp.sum(jnp.sin(ys)) + jnp.sum(final**2)

  contrib = analysis.step_contributions(cell, params, xs, loss_fn, carry=carry, lengths=lengths)
  total = jax.tree.map(lambda c: c.sum(axis=0), contrib)
  run = lambda p: gj.scan(cell, p, xs, carry=carry, lengths=lengths, impl="autodiff")
  grad = jax.grad(lambda p: loss_fn(*run(p)[::-1]))(params)
  chex.assert_trees_all_close(total, grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("negative", [False, True])
def test_lyapunov_exponents_closed_form(negative, x64):
  """``mean_t Δ_{t,d} A_{d,n}`` per state entry (``mean_t log|2 e^{ΔA} − 1|`` with negative
  eigenvalues), over each sequence's valid steps; NaN in the padding changes nothing."""
  cell, params, xs, carry = problem(8, negative=negative)
  lengths = jnp.asarray([6, 1, 4], jnp.int32)
  lam = dynamics.lyapunov_exponents(cell, params, xs, carry=carry, lengths=lengths)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  u = np.asarray(xs) @ p.w_x
  delta = (u @ p.x_proj)[..., : cell.options.dt_rank] @ p.dt_proj_w + p.dt_proj_b
  step_size = np.logaddexp(0, delta)  # (T, B, H)
  rate = step_size[..., None] * -np.exp(p.a_log)  # Δ_{t,d} A_{d,n}
  if negative:
    rate = np.log(np.abs(2 * np.exp(rate) - 1))
  for b, length in enumerate(np.asarray(lengths)):
    expected = np.sort(rate[:length, b].reshape(length, -1).mean(axis=0))[::-1]
    assert_close(lam[b], expected, 1e-12)
  valid = jnp.arange(T, dtype=jnp.int32)[:, None] < lengths[None]
  poisoned = jnp.where(valid[..., None], xs, jnp.nan)
  chex.assert_trees_all_equal(
    dynamics.lyapunov_exponents(cell, params, poisoned, carry=carry, lengths=lengths), lam
  )


def test_trains():
  cell = CELLS[True]
  task = tasks.adding(6, variable_length=True, min_length=3)
  key = jax.random.key(0)
  result = train.fit(cell, task, key=key, steps=3, batch_size=8, eval_every=0, progress=False)
  assert not result.history.diverged and all(math.isfinite(x) for x in result.history.loss)
  start = train.init_model(cell, task, jax.random.split(jax.random.split(key)[0])[0])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params.cell, start.cell)
  assert all(jax.tree.leaves(changed))
