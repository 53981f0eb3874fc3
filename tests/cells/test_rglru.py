"""gj.rg_lru against recurrentgemma 1.0.1's ``RGLRU``: its NumPy transcription
(tests/official_steps.py) in float64 through every runner, its initialisation, and, where the
``oracles`` extra is installed, the official JAX layer itself (values and gradients).

References: ``official_steps.rg_lru_official`` run on each sequence alone and unpadded; closed
forms of a diagonal recurrence (the Jacobian ``diag(a_t)``, Lyapunov exponents ``mean_t log
a_t``); ``jax.jacrev`` of a loop of steps; the derivative of the bounded square root by hand.
"""

import importlib.metadata
import importlib.util
import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
import official_steps as ref
from gatejax import analysis, dynamics, protocol, tasks, train
from registry import normal, random_params

H, I, NH = 6, 3, 2
T, B = 7, 3
LENGTHS = np.array([7, 0, 4])
CELL = gj.rg_lru(H, num_heads=NH)


def as64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def problem(seed=0, dtype=np.float64):
  """Every parameter drawn (so each one matters), ``a_param`` as ``init`` draws it (decays near
  1, a long memory), a random carry and inputs."""
  params = random_params(CELL, seed, I, dtype=dtype)
  params = params._replace(a_param=CELL.init(jax.random.key(seed), I, dtype=dtype).a_param)
  rng = np.random.default_rng(seed + 1)
  xs = normal(rng, (T, B, I), dtype)
  carry = normal(rng, (B, H), dtype)
  return params, xs, carry


def official_padded(params, xs, carry, lengths, reverse=False):
  """The oracle: each sequence through the transcription alone, on its valid steps only."""
  p, xs, carry = as64(params), np.asarray(xs, np.float64), np.asarray(carry, np.float64)
  finals, ys = [], np.zeros((*xs.shape[:2], H))
  for b, length in enumerate(lengths):
    if not length:  # no step: the carry as given, zeros out
      finals.append(carry[b])
      continue
    seq = xs[:length, b][::-1] if reverse else xs[:length, b]
    final, y = ref.rg_lru_official(p, seq[:, None], carry[b][None])
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


VALID = np.arange(T)[:, None] < LENGTHS[None, :]


def poisoned(xs):
  """``xs`` with NaN at every step past its sequence's length."""
  return jnp.where(jnp.asarray(VALID)[..., None], xs, jnp.nan)


def scan_run(impl, reverse=False):
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  return lambda p, x, c: gj.scan(CELL, p, x, carry=c, lengths=lengths, reverse=reverse, impl=impl)


def newton_run(p, x, c):
  return gj.parallel_scan(CELL, p, x, carry=c, lengths=jnp.asarray(LENGTHS, jnp.int32))[:2]


def loss_of(run):
  def loss(params, xs, carry):
    final, ys = run(params, xs, carry)
    weights = jnp.linspace(0.5, 1.5, ys.shape[0], dtype=ys.dtype)[:, None, None]
    return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(final**2)

  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


# ---------------------------------------------------------------------------
# Against the official step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_every_runner_equals_the_official_step_float64(reverse, x64):
  """gj.scan (fused, autodiff, associative) and gj.parallel_scan, padded, both directions."""
  params, xs, carry = problem()
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  expected = official_padded(params, xs, carry, LENGTHS, reverse)
  for impl in ("fused", "autodiff", "associative"):
    got = gj.scan(CELL, params, xs, carry=carry, lengths=lengths, reverse=reverse, impl=impl)
    assert_close(got, expected, 1e-12)
  final, ys, info = gj.parallel_scan(
    CELL, params, xs, carry=carry, lengths=lengths, reverse=reverse
  )
  assert_close((final, ys), expected, 1e-12)
  np.testing.assert_array_equal(info.iterations, 1)  # affine: one exact solve
  assert bool(info.converged.all())


def test_float32_error_against_the_official_step():
  params, xs, carry = problem(dtype=np.float32)
  expected = official_padded(params, xs, carry, LENGTHS)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  assert_close(gj.scan(CELL, params, xs, carry=carry, lengths=lengths), expected, 2e-6)


def test_fast_paths_equal_the_loop_in_values_and_gradients(x64):
  """The associative scan, the fused VJP and parallel_scan against autodiff of the step loop,
  with lengths (tests/run/test_scan.py checks both directions); NaN in the padding reaches
  neither the values nor the gradients of gj.scan."""
  params, xs, carry = problem(2)
  value, grads = loss_of(scan_run("autodiff"))(params, xs, carry)
  assert not np.any(np.asarray(grads[1])[~VALID])
  for impl in ("associative", "fused"):
    for inputs in (xs, poisoned(xs)):
      got = loss_of(scan_run(impl))(params, inputs, carry)
      chex.assert_trees_all_close(got, (value, grads), rtol=1e-12, atol=1e-12)
  got = loss_of(newton_run)(params, xs, carry)
  chex.assert_trees_all_close(got, (value, grads), rtol=1e-12, atol=1e-12)


def test_parallel_scan_gradients_ignore_nan_padding(x64):
  params, xs, carry = problem(2)
  want = loss_of(scan_run("autodiff"))(params, xs, carry)
  got = loss_of(newton_run)(params, poisoned(xs), carry)
  chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def recurrentgemma():
  if importlib.util.find_spec("recurrentgemma") is None:
    pytest.skip("recurrentgemma==1.0.1 is not installed (the oracles extra)")
  if importlib.metadata.version("recurrentgemma") != "1.0.1":
    pytest.skip("these checks are for recurrentgemma 1.0.1")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from recurrentgemma import common
    from recurrentgemma.jax import layers, scan
  return common, layers, scan


def test_equals_recurrentgemma_values_and_gradients(recurrentgemma, monkeypatch, x64):
  """The official layer (LINEAR_NATIVE, float64 accumulation) at positions that start no
  segment, on ``u = x w_x + b_x``: outputs, final state and every gradient, the bounded
  derivative of the square root included."""
  common, layers, scan = recurrentgemma
  original = scan.linear_scan

  def linear_scan(*args, **kwargs):
    return original(*args, **{**kwargs, "acc_float_dtype": jnp.float64})

  monkeypatch.setattr(scan, "linear_scan", linear_scan)
  params, xs, carry = problem(3)
  # head 0 nearly closed (1 − a² ≈ 1e-10): the bounded derivative of the square root acts there
  params = params._replace(a_gate_b=params.a_gate_b.at[0].set(-25.0))
  module = layers.RGLRU(
    width=H, num_heads=NH, scan_type=common.ScanType.LINEAR_NATIVE, param_dtype=jnp.float64
  )
  positions = jnp.tile(jnp.arange(1, T + 1)[None], (B, 1))  # no step starts a segment

  def official(p, xs, c):
    variables = {
      "params": {
        "a_param": p.a_param,
        "input_gate": {"w": p.input_gate_w, "b": p.input_gate_b},
        "a_gate": {"w": p.a_gate_w, "b": p.a_gate_b},
      }
    }
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
      u = (xs @ p.w_x + p.b_x).swapaxes(0, 1)  # the layer's input is SPEC's u, batch-major
      y, last = module.apply(variables, u, positions, c)
    return last, y.swapaxes(0, 1)

  want = loss_of(official)(params, xs, carry)
  got = loss_of(lambda p, x, c: gj.scan(CELL, p, x, carry=c))(params, xs, carry)
  chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Decisions documented in the docstring
# ---------------------------------------------------------------------------


def test_square_root_derivative_is_bounded_as_the_official(x64):
  """d sqrt(q)/dq is taken at max(q, 1/(4·1000²)) (recurrentgemma's sqrt_bound_derivative)."""
  c, u = 8.0, 0.7
  # b_t, the step's output from a zero carry, at x = 1
  input_grad = jax.jit(jax.grad(lambda p: CELL.project(p, jnp.ones(1))[H : 2 * H].sum()))
  for bias in (-25.0, 0.3):  # 1 - a² ≈ 1.6e-10 (capped) and ≈ 1 (not)
    params = CELL.init(jax.random.key(0), 1, dtype=jnp.float64)
    params = params._replace(
      w_x=jnp.full((1, H), u),
      input_gate_w=jnp.zeros_like(params.input_gate_w),
      a_gate_w=jnp.zeros_like(params.a_gate_w),
      a_gate_b=jnp.full_like(params.a_gate_b, bias),
    )
    grad = input_grad(params)
    ap = np.asarray(params.a_param)
    gate_a = 1 / (1 + math.exp(-bias))
    log_a = -c * gate_a * np.logaddexp(0, ap)
    q = -np.expm1(2 * log_a)
    dq = 2 * c * gate_a * np.exp(2 * log_a) / (1 + np.exp(-ap))  # ∂(1 − a²)/∂a_param
    expected = u * 0.5 * 0.5 / np.sqrt(np.maximum(q, 1 / (4 * 1000.0**2))) * dq  # gate_x = ½
    assert_close(grad.a_param, expected, 1e-9)
    if bias < 0:
      uncapped = u * 0.5 * 0.5 / np.sqrt(q) * dq
      assert np.all(uncapped > 10 * expected)


def test_gradient_is_finite_where_one_minus_a_squared_rounds_to_zero():
  params = CELL.init(jax.random.key(0), I)
  params = params._replace(a_gate_b=jnp.full_like(params.a_gate_b, -40.0))  # a = 1 in float32
  x = jnp.ones((2, I))
  aff = CELL.affine(params, x[None])
  assert np.all(np.asarray(aff.a) == 1) and not np.any(np.asarray(aff.b))  # sqrt(1 - a²) = 0
  grad = jax.jit(jax.grad(lambda p: CELL.project(p, x)[..., H : 2 * H].sum()))(params)
  chex.assert_tree_all_finite(grad)
  assert np.any(np.asarray(grad.a_param))


def test_every_step_is_normalised_unlike_a_segment_start(x64):
  """The official layer at a segment start skips the sqrt factor and forgets h; the cell
  normalises every step and keeps its carry (it has no positions)."""
  params, xs, carry = problem(4)
  p = as64(params)
  _, ys = gj.scan(CELL, params, xs, carry=carry)
  positions = np.tile(np.arange(1, T + 1)[:, None], (1, B))
  _, ys_official = ref.rg_lru_official(p, np.asarray(xs), np.asarray(carry), segment_pos=positions)
  assert_close(ys, ys_official, 1e-12)
  _, ys_reset = ref.rg_lru_official(p, np.asarray(xs), np.asarray(carry), segment_pos=positions - 1)
  assert np.max(np.abs(np.asarray(ys) - ys_reset)) > 1e-2


def test_init_follows_the_official_code_not_the_paper_text():
  hidden, heads, inputs = 512, 4, 64
  cell = gj.rg_lru(hidden, num_heads=heads)
  params = cell.init(jax.random.key(0), inputs)
  ref.check_init(params, ref.rg_lru_official_init(inputs, hidden, num_heads=heads))
  # w_x, b_x (open in the official layer): Griffin's linear_x, N(0, 1/I) untruncated, zero bias
  w_x = np.asarray(params.w_x, np.float64).ravel()
  ks = ref.ks_statistic(w_x, ref.normal_cdf(0.0, 1 / math.sqrt(inputs)))
  assert ks <= ref.ks_critical(w_x.size, 1e-6)
  assert np.abs(w_x).max() > 2.5 / math.sqrt(inputs)  # not truncated at 2σ as lecun_normal
  assert not np.any(np.asarray(params.b_x))
  # the code's base decay in [0.9, 0.999], so a^8 (a closed gate) reaches down to ~0.43:
  # the paper's "a^c uniform in [0.9, 0.999]" is not what the code (and gatejax) does
  base = np.exp(-np.logaddexp(0, np.asarray(params.a_param, np.float64)))
  assert base.min() >= 0.9 and base.max() <= 0.999 + 1e-6
  assert (base**8).min() < 0.5
  # the ring follows min_rad and max_rad
  other = gj.rg_lru(hidden, min_rad=0.5, max_rad=0.6).init(jax.random.key(1), 2)
  ref.check_init(other, ref.rg_lru_official_init(2, hidden, min_rad=0.5, max_rad=0.6))
  with pytest.raises(AssertionError):
    ref.check_init(other, ref.rg_lru_official_init(2, hidden))


def test_init_in_float64_is_drawn_in_float64(x64):
  params = CELL.init(jax.random.key(0), I, dtype=jnp.float64)
  base = np.exp(-np.logaddexp(0, np.asarray(params.a_param)))
  radius_sq = base**2 - 1e-8
  # float64 draws: the ring's radius² inverts to the uniform draw to float64 precision
  unif = (radius_sq - 0.9**2) / (0.999**2 - 0.9**2)
  assert np.all((unif >= -1e-12) & (unif <= 1 + 1e-12))
  assert params.a_param.dtype == jnp.float64


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    ({"num_heads": 4}, ValueError, "num_heads"),
    ({"num_heads": 0}, ValueError, "num_heads"),
    ({"c": 0.0}, ValueError, "c must"),
    ({"c": "8"}, TypeError, "c must"),
    ({"min_rad": -0.1}, ValueError, "min_rad"),
    ({"max_rad": 1.0}, ValueError, "max_rad"),
    ({"min_rad": 0.99, "max_rad": 0.9}, ValueError, "min_rad"),
  ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
  with pytest.raises(error, match=match):
    gj.rg_lru(H, **kwargs)


# ---------------------------------------------------------------------------
# The protocol, the analysis and the dynamics
# ---------------------------------------------------------------------------


def test_optional_members_agree_with_the_step(x64):
  params, xs, carry = problem(5)
  xs = xs[:3]
  protocol.check(CELL, params, xs, carry=carry)
  assert protocol.keep_gate(CELL) == "a"
  _, _, gates = gj.scan_with_gates(CELL, params, xs)
  keep, write = CELL.keep_write(gates)
  chex.assert_trees_all_close(keep, gates.a)
  chex.assert_trees_all_close(write**2 + keep**2 * gates.gate_x**2, gates.gate_x**2)


def test_jacobian_is_diag_a_and_its_norms_equal_jacrev(x64):
  """Each step's Jacobian (jacrev) is diag(a_t); ∂c_T/∂c_k, their product over the valid steps
  after k, has the norms that jacobian_norms reads from a_t and finds by its sweep."""
  params, xs, carry = problem(6)
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  a = np.asarray(CELL.affine(params, xs).a)
  step = jax.jit(lambda c, x: CELL.step(params, c, x)[0])
  jacobian = jax.jit(jax.jacrev(step))
  norms = {
    o: analysis.jacobian_norms(CELL, params, xs, ord=o, carry=carry, lengths=lengths)
    for o in (2, "fro")
  }
  swept = analysis.jacobian_norms(
    CELL._replace(affine=None), params, xs, carry=carry, lengths=lengths
  )
  for b, length in enumerate(LENGTHS):
    c, steps = carry[b], []
    for t in range(length):
      steps.append(np.asarray(jacobian(c, xs[t, b])))
      np.testing.assert_allclose(steps[-1], np.diag(a[t, b]), rtol=1e-14, atol=1e-14)
      c = step(c, xs[t, b])
    for k in range(T):
      J = np.eye(H)
      for J_t in steps[k:]:
        J = J_t @ J
      for o in (2, "fro"):
        assert_close(norms[o][k, b], np.linalg.norm(J, o), 1e-12)
      assert_close(swept[k, b], np.linalg.norm(J, 2), 1e-12)


def test_contributions_sum_to_the_gradient(x64):
  params, xs, carry = problem(7)
  lengths = jnp.asarray(LENGTHS, jnp.int32)

  def loss_fn(ys, final):
    return jnp.sum(jnp.sin(ys)) + jnp.sum(final**2)

  contrib = analysis.step_contributions(CELL, params, xs, loss_fn, carry=carry, lengths=lengths)
  total = jax.tree.map(lambda c: c.sum(axis=0), contrib)
  grad = jax.grad(
    lambda p: loss_fn(*gj.scan(CELL, p, xs, carry=carry, lengths=lengths, impl="autodiff")[::-1])
  )(params)
  chex.assert_trees_all_close(total, grad, rtol=1e-12, atol=1e-12)


def test_lyapunov_exponents_are_the_mean_log_decay_per_unit(x64):
  params, xs, carry = problem(8)
  lengths = jnp.asarray([7, 1, 4], jnp.int32)
  lam = dynamics.lyapunov_exponents(CELL, params, xs, carry=carry, lengths=lengths)
  log_a = np.log(np.asarray(CELL.affine(params, xs).a))  # (T, B, H)
  for b, length in enumerate(np.asarray(lengths)):
    expected = np.sort(log_a[:length, b].mean(axis=0))[::-1]
    assert_close(lam[b], expected, 1e-12)
  nan_padded = jnp.where(
    (jnp.arange(T, dtype=jnp.int32)[:, None] < lengths[None])[..., None], xs, jnp.nan
  )
  chex.assert_trees_all_equal(
    dynamics.lyapunov_exponents(CELL, params, nan_padded, carry=carry, lengths=lengths), lam
  )


def test_stacked_bidirectional_equals_its_composition():
  net = gj.stack(CELL, bidirectional=True)
  params = net.init(jax.random.key(0), I)
  xs = normal(np.random.default_rng(9), (T, B, I))
  lengths = jnp.asarray(LENGTHS, jnp.int32)
  _, ys = gj.scan_stack(net, params, xs, lengths=lengths)
  inputs = xs
  for p in params:
    _, y_f = gj.scan(CELL, p.forward, inputs, lengths=lengths)
    _, y_b = gj.scan(CELL, p.backward, inputs, lengths=lengths, reverse=True)
    inputs = jnp.concatenate([y_f, y_b], axis=-1)
  chex.assert_trees_all_close(ys, inputs, rtol=1e-6, atol=1e-6)


def test_trains():
  task = tasks.adding(6, variable_length=True, min_length=3)
  result = train.fit(
    CELL, task, key=jax.random.key(0), steps=3, batch_size=8, eval_every=0, progress=False
  )
  loss = result.history.loss
  assert not result.history.diverged and all(math.isfinite(x) for x in loss)
  start = train.init_model(CELL, task, jax.random.split(jax.random.split(jax.random.key(0))[0])[0])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params.cell, start.cell)
  assert all(jax.tree.leaves(changed))
