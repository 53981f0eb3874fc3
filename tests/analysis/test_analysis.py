"""gatejax.analysis against independent references, closed forms and the demonstration.

References built here, not by the library's sweeps: ``jax.grad`` of the whole loss (the
sum of the contributions), a Python loop over ``cell.step`` with a separate parameter
perturbation per step (the split itself), and ``jax.grad`` / ``jax.jacrev`` of a loop started
from an independent carry (carry adjoints and Jacobian norms).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import analysis
from registry import PATHS, make

H, I, T = 4, 3, 7
LENGTHS = (5, 3)  # both short of T, so steps 5 and 6 are padding for every sequence


def loss_fn(ys, carry):
  """Reads every output and the whole final carry, nonlinearly."""
  final = sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(carry))
  return (
    jnp.sum(jnp.sin(ys) * jnp.arange(1, ys.shape[0] + 1, dtype=ys.dtype)[:, None, None]) + final
  )


def last_step_loss(ys, carry):
  return jnp.sum(ys[-1] ** 2)


def normal(seed, shape, dtype, scale=1.0):
  """NumPy draws (no compilation), rounded to ``dtype``."""
  return jnp.asarray((scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype))


def draw_params(cell, seed, dtype, *, scale=0.5):
  """``cell.init``'s structure with every leaf drawn, so that every parameter matters."""
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
  leaves, treedef = jax.tree.flatten(shapes)
  drawn = [normal(seed + k, s.shape, dtype, scale) for k, s in enumerate(leaves)]
  return jax.tree.unflatten(treedef, drawn)


@functools.cache
def cell_of(name, hidden=H):
  """One Cell object per variant, so the compiled sweeps are reused across tests."""
  return make(name, hidden)


def problem(name, dtype, *, hidden=H, batch=2):
  cell = cell_of(name, hidden)
  return cell, draw_params(cell, 0, dtype), normal(100, (T, batch, I), dtype)


def rel_err(a, b):
  diff = sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2) for x, y in zip(a, b, strict=True))
  return math.sqrt(diff / sum(np.sum(np.asarray(y) ** 2) for y in b))


def leaves(tree):
  return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(tree)]


def output(carry):
  """The output each registered cell reads from its new carry (``h``)."""
  if isinstance(carry, gj.LSTMState):
    return carry.h
  return carry["h"] if isinstance(carry, dict) else carry


def masked_loop(cell, params_at, xs, carry, lengths, start=0):
  """A Python loop over ``cell.step`` from step ``start``; ``params_at(t)`` gives step t's params."""
  ys = []
  for t in range(start, xs.shape[0]):
    new, y = cell.step(params_at(t), carry, xs[t])
    if lengths is not None:
      valid = jnp.asarray(lengths) > t  # (batch,), reshaped to each leaf's rank
      new = jax.tree.map(
        lambda n, o, v=valid: jnp.where(v.reshape(v.shape + (1,) * (n.ndim - 1)), n, o), new, carry
      )
      y = jnp.where(valid[:, None], y, 0)
    carry = new
    ys.append(y)
  return carry, ys


# ---------------------------------------------------------------------------
# Per-step contributions
# ---------------------------------------------------------------------------


def grad_by_loop(cell, params, xs, lengths):
  """jax.grad of the same loss over a Python loop of ``cell.step`` (SPEC §3's oracle for scan)."""

  def loss(p):
    carry, ys = masked_loop(cell, lambda _: p, xs, cell.initial_carry((2,), xs.dtype), lengths)
    return loss_fn(jnp.stack(ys), carry)

  return jax.grad(loss)(params)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_contributions_sum_to_grad(name, dtype, tol, request):
  if dtype == "float64":
    request.getfixturevalue("x64")
  cell, params, xs = problem(name, jnp.dtype(dtype))
  for lengths in (None, jnp.array(LENGTHS)):
    contrib = analysis.step_contributions(cell, params, xs, loss_fn, lengths=lengths)
    chex.assert_trees_all_equal_shapes_and_dtypes(jax.tree.map(lambda c: c[0], contrib), params)
    total = jax.tree.map(lambda c: c.sum(axis=0), contrib)
    assert rel_err(leaves(total), leaves(grad_by_loop(cell, params, xs, lengths))) <= tol
    if lengths is not None:
      for leaf in jax.tree.leaves(contrib):
        assert np.all(np.asarray(leaf[max(LENGTHS) :]) == 0)  # exactly, not approximately
        assert np.any(np.asarray(leaf[max(LENGTHS) - 1]) != 0)


def test_contributions_sum_to_the_grad_through_gj_scan(x64):
  cell, params, xs = problem("lstm", jnp.float64)
  lengths = jnp.array(LENGTHS)
  contrib = analysis.step_contributions(cell, params, xs, loss_fn, lengths=lengths)
  grad = jax.grad(lambda p: loss_fn(*gj.scan(cell, p, xs, lengths=lengths)[::-1]))(params)
  total = jax.tree.map(lambda c: c.sum(axis=0), contrib)
  assert rel_err(leaves(total), leaves(grad)) <= 1e-12


@pytest.mark.parametrize("name", ["gru_before", "lstm"])
def test_contributions_match_a_per_step_perturbation(name, x64):
  """g_t = ∂L/∂δ_t for a loop whose step t uses params + δ_t: the split itself, step by step."""
  cell, params, xs = problem(name, jnp.float64)
  lengths = jnp.array(LENGTHS)
  carry0 = cell.initial_carry((2,), jnp.float64)

  def perturbed_loss(deltas):
    at = lambda t: jax.tree.map(lambda p, d: p + d[t], params, deltas)
    carry, ys = masked_loop(cell, at, xs, carry0, lengths)
    return loss_fn(jnp.stack(ys), carry)

  zeros = jax.tree.map(lambda p: jnp.zeros((T, *p.shape), p.dtype), params)
  expected = jax.grad(perturbed_loss)(zeros)
  contrib = analysis.step_contributions(cell, params, xs, loss_fn, lengths=lengths)
  for t in range(T):
    got, want = jax.tree.map(lambda c, t=t: c[t], (contrib, expected))
    if t < max(LENGTHS):
      assert rel_err(leaves(got), leaves(want)) <= 1e-12
    else:
      chex.assert_trees_all_equal(got, want)  # both exactly zero


def test_padding_equals_truncation(x64):
  cell, params, xs = problem("lstm", jnp.float64, batch=1)
  padded = analysis.step_contributions(cell, params, xs, loss_fn, lengths=jnp.array([4]))
  short = analysis.step_contributions(cell, params, xs[:4], loss_fn)
  chex.assert_trees_all_close(jax.tree.map(lambda c: c[:4], padded), short, rtol=1e-12)


@pytest.mark.parametrize("name", PATHS)
def test_contribution_norms_are_norms_of_contributions(name):
  cell, params, xs = problem(name, jnp.float32)
  lengths = jnp.array(LENGTHS)
  contrib = analysis.step_contributions(cell, params, xs, loss_fn, lengths=lengths)
  norms = analysis.contribution_norms(cell, params, xs, loss_fn, lengths=lengths)
  flat = np.concatenate(
    [np.asarray(c, np.float64).reshape(T, -1) for c in jax.tree.leaves(contrib)], 1
  )
  chex.assert_shape(norms, (T,))
  np.testing.assert_allclose(norms, np.linalg.norm(flat, axis=1), rtol=1e-5)
  assert np.all(np.asarray(norms)[max(LENGTHS) :] == 0)


def test_contribution_norms_neither_underflow_nor_overflow():
  """Contributions of 1e-30 have squares below float32's range; the norm must still scale."""
  cell, params, xs = problem("gru_after", jnp.float32)
  base = analysis.contribution_norms(cell, params, xs, last_step_loss)
  for scale in (1e-30, 1e30):
    scaled = analysis.contribution_norms(
      cell, params, xs, lambda ys, c, s=scale: jnp.float32(s) * last_step_loss(ys, c)
    )
    np.testing.assert_allclose(scaled, scale * np.asarray(base, np.float64), rtol=1e-5)


@pytest.mark.parametrize("batch_shape", [(), (2, 3)])
def test_any_batch_shape_equals_a_flat_batch(batch_shape):
  cell = cell_of("lstm")
  params = draw_params(cell, 0, jnp.float32)
  xs = normal(100, (T, *batch_shape, I), jnp.float32)
  flat = xs.reshape(T, -1, I)
  lengths = jnp.full(batch_shape, 4)
  norms = analysis.contribution_norms(cell, params, xs, last_step_loss, lengths=lengths)
  np.testing.assert_allclose(
    norms, analysis.contribution_norms(cell, params, flat, last_step_loss, lengths=lengths.ravel())
  )
  jn = analysis.jacobian_norms(cell, params, xs, lengths=lengths)
  chex.assert_shape(jn, (T, *batch_shape))
  np.testing.assert_allclose(
    jn.reshape(T, -1), analysis.jacobian_norms(cell, params, flat, lengths=lengths.ravel())
  )


# ---------------------------------------------------------------------------
# Carry adjoints and Jacobian norms against jax.grad / jax.jacrev of a restarted loop
# ---------------------------------------------------------------------------


def carries_after(cell, params, xs, lengths):
  """[c_1, ..., c_T] by a plain loop (c_{t+1} is the carry after step t)."""
  carry = cell.initial_carry((xs.shape[1],), xs.dtype)
  out = []
  for t in range(xs.shape[0]):
    carry, _ = masked_loop(cell, lambda _: params, xs[: t + 1], carry, lengths, start=t)
    out.append(carry)  # one step of the loop: from c_t to c_{t+1}
  return out


@pytest.mark.parametrize("name", PATHS)
def test_carry_gradients_match_grad_of_a_restarted_loop(name, x64):
  cell, params, xs = problem(name, jnp.float64)
  lengths = jnp.array([T, 3])
  adj = analysis.carry_gradients(cell, params, xs, loss_fn, lengths=lengths)
  after = carries_after(cell, params, xs, lengths)
  _, ys_all = masked_loop(cell, lambda _: params, xs, cell.initial_carry((2,), xs.dtype), lengths)
  for t in range(T):

    def from_carry(c, t=t):
      # c is c_{t+1}, an independent variable: read by output t and by every later step.
      y_t = jnp.where((lengths > t)[:, None], output(c), 0)
      final, later = masked_loop(cell, lambda _: params, xs, c, lengths, start=t + 1)
      return loss_fn(jnp.stack([*ys_all[:t], y_t, *later]), final)

    expected = jax.grad(from_carry)(after[t])
    chex.assert_trees_all_close(jax.tree.map(lambda a, t=t: a[t], adj), expected, rtol=1e-12)


def slow_jacobian_norms(cell, params, xs, lengths, ord):
  """‖∂c_T/∂c_k‖ per batch element from jax.jacrev of the loop restarted at c_k."""
  B = xs.shape[1]
  initial = cell.initial_carry((B,), xs.dtype)
  before = [initial, *carries_after(cell, params, xs, lengths)]
  flat = lambda c: jnp.concatenate([a.reshape(B, -1) for a in jax.tree.leaves(c)], axis=-1)
  out = np.zeros((xs.shape[0], B))
  for k in range(xs.shape[0]):
    run = lambda c, k=k: flat(masked_loop(cell, lambda _: params, xs, c, lengths, start=k)[0])
    jac = jax.jacrev(run)(before[k])  # (B, D) x carry pytree of (B, D_leaf)
    full = np.concatenate(  # (B, D, B, D)
      [np.asarray(j).reshape(B, -1, B, math.prod(j.shape[3:])) for j in jax.tree.leaves(jac)],
      axis=-1,
    )
    for b in range(B):
      out[k, b] = np.linalg.norm(full[b, :, b, :], ord=ord)
  return out


@pytest.mark.parametrize("name", PATHS)
def test_jacobian_norms_match_jacrev(name, x64):
  cell, params, xs = problem(name, jnp.float64)
  lengths = jnp.array([T, 3])
  for ord in (2, "fro"):
    jn = analysis.jacobian_norms(cell, params, xs, ord=ord, lengths=lengths)
    chex.assert_shape(jn, (T, 2))
    np.testing.assert_allclose(jn, slow_jacobian_norms(cell, params, xs, lengths, ord), rtol=1e-10)


def test_jacobian_norms_with_lengths_equal_truncated_runs(x64):
  cell, params, xs = problem("gru_after", jnp.float64, batch=2)
  jn = analysis.jacobian_norms(cell, params, xs, lengths=jnp.array([T, 3]))
  np.testing.assert_allclose(jn[:, 0], analysis.jacobian_norms(cell, params, xs[:, :1])[:, 0])
  np.testing.assert_allclose(jn[:3, 1], analysis.jacobian_norms(cell, params, xs[:3, 1:])[:, 0])
  np.testing.assert_array_equal(jn[3:, 1], 1.0)  # past the length the carry is c_T itself


# ---------------------------------------------------------------------------
# Closed forms (SPEC §4) and one for the LSTM memory path
# ---------------------------------------------------------------------------


def distance(n):
  return np.arange(n, 0, -1)  # entry k is at distance T - k


def test_zero_gru_halves_per_step(x64):
  cell = gj.gru(H)
  params = jax.tree.map(jnp.zeros_like, cell.init(jax.random.key(0), I, dtype=jnp.float64))
  xs = jax.random.normal(jax.random.key(1), (T, 3, I), jnp.float64)
  expected = np.broadcast_to(0.5 ** distance(T)[:, None], (T, 3))
  np.testing.assert_allclose(analysis.jacobian_norms(cell, params, xs), expected, rtol=1e-14)
  np.testing.assert_allclose(
    analysis.jacobian_norms(cell, params, xs, ord="fro"), math.sqrt(H) * expected, rtol=1e-14
  )


@pytest.mark.parametrize("a", [0.9, -1.1])
def test_linear_rnn_scales_by_a_per_step(a, x64):
  cell = gj.rnn(H, activation=lambda v: v)
  params = cell.init(jax.random.key(0), I, dtype=jnp.float64)._replace(
    w_h=a * jnp.eye(H, dtype=jnp.float64)
  )
  xs = jax.random.normal(jax.random.key(1), (T, 2, I), jnp.float64)
  jn = analysis.jacobian_norms(cell, params, xs)
  np.testing.assert_allclose(
    jn, np.broadcast_to(abs(a) ** distance(T)[:, None], (T, 2)), rtol=1e-13
  )


def test_tanh_rnn_is_bounded_by_the_largest_singular_value(x64):
  cell = gj.rnn(8)
  params = cell.init(jax.random.key(0), I, dtype=jnp.float64)
  w_h = 1.4 * params.w_h + 0.3 * jax.random.normal(jax.random.key(2), (8, 8), jnp.float64)
  params = params._replace(w_h=w_h)
  sigma = float(np.linalg.norm(np.asarray(w_h), ord=2))
  assert sigma > 1  # the bound is then far from trivial: it grows, the norms do not
  xs = jax.random.normal(jax.random.key(1), (30, 4, I), jnp.float64)
  jn = np.asarray(analysis.jacobian_norms(cell, params, xs))
  bound = sigma ** distance(30)[:, None]
  assert np.all(jn <= bound * (1 + 1e-12))
  assert jn[0].max() < 1e-3 * bound[0, 0]  # saturation makes the product far smaller


def test_lstm_memory_path_scales_by_the_forget_gate(x64):
  """Zero weights, forget bias b_j per unit: c_t = σ(b_j) c_{t-1} and h_t = ½ tanh(c_t), c = 0.

  So ∂c_T/∂c_k = diag(σ(b)^(T-k)), ∂h_T/∂c_k = ½ of it, nothing depends on h_k: the
  Jacobian's singular values are √(1 + ¼) σ(b_j)^(T-k).
  """
  cell = gj.lstm(H)
  params = jax.tree.map(jnp.zeros_like, cell.init(jax.random.key(0), I, dtype=jnp.float64))
  b_f = jnp.array([-1.0, 0.0, 1.5, 3.0], jnp.float64)
  params = params._replace(b=params.b.at[H : 2 * H].set(b_f))
  xs = jax.random.normal(jax.random.key(1), (T, 2, I), jnp.float64)
  keep = np.asarray(jax.nn.sigmoid(b_f))[None, :] ** distance(T)[:, None]  # (T, H)
  spectral = math.sqrt(1.25) * keep.max(axis=1)
  frobenius = np.sqrt(1.25 * np.sum(keep**2, axis=1))
  np.testing.assert_allclose(analysis.jacobian_norms(cell, params, xs)[:, 1], spectral, rtol=1e-13)
  np.testing.assert_allclose(
    analysis.jacobian_norms(cell, params, xs, ord="fro")[:, 0], frobenius, rtol=1e-13
  )


def test_lstm_memory_adjoint_is_a_product_of_forget_gates(x64):
  """W_h = 0, any inputs: for L = <v, c_T>, ∂L/∂c_{t+1} = (0, v ⊙ f_{t+1} ⊙ ... ⊙ f_{T-1})."""
  cell = gj.lstm(H)
  params = draw_params(cell, 0, jnp.float64, scale=1.0)
  params = params._replace(w_h=jnp.zeros_like(params.w_h))
  xs = jax.random.normal(jax.random.key(1), (T, 2, I), jnp.float64)
  v = jax.random.normal(jax.random.key(3), (2, H), jnp.float64)
  adj = analysis.carry_gradients(cell, params, xs, lambda ys, c: jnp.sum(v * c.c))
  _, _, gates = gj.scan_with_gates(cell, params, xs)
  f = np.asarray(gates.f)
  for t in range(T):
    np.testing.assert_allclose(adj.c[t], np.asarray(v) * np.prod(f[t + 1 :], axis=0), rtol=1e-13)
  np.testing.assert_array_equal(adj.h, 0.0)


# ---------------------------------------------------------------------------
# Summaries on synthetic curves
# ---------------------------------------------------------------------------


def geometric(rho, n, c=2.0):
  """A curve indexed by time whose value d steps back is c·rho^d."""
  return (c * rho ** np.arange(n, dtype=np.float64))[::-1].copy()


def test_summaries_of_geometric_curves():
  n, rho, k = 60, 0.8, 20
  curve = geometric(rho, n)
  expected_horizon = math.floor(math.log(0.01) / math.log(rho)) + 1
  assert int(analysis.gradient_horizon(curve)) == expected_horizon
  assert int(analysis.gradient_horizon(curve, fraction=1.0)) == 1
  far = rho**k * (1 - rho ** (n - k)) / (1 - rho**n)
  np.testing.assert_allclose(analysis.far_share(curve, k), far, rtol=1e-6)
  np.testing.assert_allclose(analysis.near_share(curve, k), 1 - far, rtol=1e-6)
  np.testing.assert_allclose(analysis.decay_rate(curve), rho, rtol=1e-6)
  np.testing.assert_allclose(analysis.decay_rate(curve, start=5, stop=10), rho, rtol=1e-6)


def test_summaries_work_per_column_and_keep_tiny_shares():
  n = 200
  curves = np.stack([geometric(0.5, n), geometric(0.99, n), np.ones(n)], axis=1)
  horizon = np.asarray(analysis.gradient_horizon(curves))
  np.testing.assert_array_equal(horizon, [7, n, n])  # 0.99^199 = 0.135 > 0.01
  far = np.asarray(analysis.far_share(jnp.asarray(curves), n // 2))
  np.testing.assert_allclose(far[0], 0.5**100, rtol=1e-5)  # 7.9e-31: not lost to 1 - near
  np.testing.assert_allclose(far[2], 0.5)
  np.testing.assert_allclose(analysis.decay_rate(curves), [0.5, 0.99, 1.0], rtol=1e-5)


def test_horizon_ignores_a_dip_and_decay_ignores_zeros():
  curve = geometric(0.9, 50)
  curve[-5] = 0.0  # a step that contributes nothing (a dip), 4 steps back
  assert int(analysis.gradient_horizon(curve)) == int(analysis.gradient_horizon(geometric(0.9, 50)))
  np.testing.assert_allclose(analysis.decay_rate(curve), 0.9, rtol=1e-6)
  assert int(analysis.gradient_horizon(np.zeros(5))) == 0


def test_summary_arguments_are_checked():
  curve = geometric(0.5, 10)
  with pytest.raises(ValueError, match="fraction"):
    analysis.gradient_horizon(curve, fraction=0.0)
  with pytest.raises(ValueError, match="k must lie"):
    analysis.far_share(curve, 11)
  with pytest.raises(TypeError, match="k must be an int"):
    analysis.near_share(curve, 2.5)
  with pytest.raises(ValueError, match="time axis"):
    analysis.decay_rate(np.zeros((0,)))


# ---------------------------------------------------------------------------
# Argument checks of the sweeps
# ---------------------------------------------------------------------------


def test_sweeps_check_their_arguments():
  cell, params, xs = problem("gru_after", jnp.float32)
  with pytest.raises(TypeError, match="loss_fn must be callable"):
    analysis.step_contributions(cell, params, xs, None)
  with pytest.raises(ValueError, match="must return a scalar"):
    analysis.contribution_norms(cell, params, xs, lambda ys, c: ys)
  with pytest.raises(ValueError, match="ord must be"):
    analysis.jacobian_norms(cell, params, xs, ord=1)
  with pytest.raises(ValueError, match="input size"):
    analysis.carry_gradients(cell, params, xs[..., :2], loss_fn)
  with pytest.raises(ValueError, match="lengths"):
    analysis.contribution_norms(cell, params, xs, loss_fn, lengths=jnp.array([1, 2, 3]))


# ---------------------------------------------------------------------------
# Gate statistics
# ---------------------------------------------------------------------------


def test_relu_gates_die_and_sigmoid_gates_do_not():
  xs = jax.random.normal(jax.random.key(1), (20, 4, I))
  relu = gj.lstm(8, gate_fn=jax.nn.relu)
  stats = analysis.gate_statistics(relu, relu.init(jax.random.key(0), I), xs)
  assert set(stats.dead) == {"i", "f", "o"}
  for gate in ("i", "o"):  # zero bias: about half the pre-activations are negative
    assert 0.2 < float(stats.dead[gate]) < 0.8
  sigmoid = gj.lstm(8)
  stats = analysis.gate_statistics(sigmoid, sigmoid.init(jax.random.key(0), I), xs)
  assert all(float(v) == 0 for v in stats.dead.values())
  assert float(stats.keep_plus_write.min) > 0 and float(stats.keep_plus_write.max) < 2


def test_dead_units_are_units_that_never_open():
  cell = gj.gru(H, gate_fn=jax.nn.relu)
  params = cell.init(jax.random.key(0), I)
  b_x = params.b_x.at[H + 1].set(-100.0)  # unit 1's update gate can never open
  stats = analysis.gate_statistics(cell, params._replace(b_x=b_x), jnp.ones((5, 2, I)))
  assert float(stats.dead_units["z"]) >= 1 / H


def test_gru_keeps_plus_writes_one():
  cell, params, xs = problem("gru_after", jnp.float32)
  stats = analysis.gate_statistics(cell, params, xs)
  np.testing.assert_allclose([stats.keep_plus_write.min, stats.keep_plus_write.max], 1.0, atol=1e-7)
  assert analysis.gate_statistics(*problem("rnn_tanh", jnp.float32)).keep_plus_write is None


def test_gate_statistics_leave_out_padded_steps():
  """Garbage past a length changes nothing: the statistics pool the valid parts only."""
  cell, params, xs = problem("lstm", jnp.float32)
  xs = xs.at[3:, 1].set(50.0)  # would saturate every gate
  stats = analysis.gate_statistics(cell, params, xs, lengths=jnp.array([T, 3]), eps=0.2)
  whole = analysis.gate_statistics(cell, params, xs[:, :1], eps=0.2)
  short = analysis.gate_statistics(cell, params, xs[:3, 1:], eps=0.2)
  for field in ("near_zero", "near_one", "dead", "mean"):
    for gate in ("i", "f", "o"):
      pooled = (T * getattr(whole, field)[gate] + 3 * getattr(short, field)[gate]) / (T + 3)
      np.testing.assert_allclose(getattr(stats, field)[gate], pooled, rtol=1e-5, atol=1e-7)
  expected_norm = np.asarray(whole.hidden_norm).copy()
  expected_norm[:3] = (expected_norm[:3] + np.asarray(short.hidden_norm)) / 2
  np.testing.assert_allclose(stats.hidden_norm, expected_norm, rtol=1e-5)


# ---------------------------------------------------------------------------
# The demonstration: far steps vanish in a tanh RNN, survive in gated cells that keep
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_far_half_share_orders_the_cells():
  T_demo, hidden, batch, input_size = 200, 32, 16, 8
  xs = jax.random.normal(jax.random.key(0), (T_demo, batch, input_size))
  cells = {
    "rnn tanh": gj.rnn(hidden),
    "gru update_bias=0": gj.gru(hidden, update_bias=0.0),
    "lstm forget_bias=1": gj.lstm(hidden, forget_bias=1.0),
    "gru chrono": gj.gru(hidden, update_bias=gj.chrono(T_demo)),
    "lstm chrono": gj.lstm(hidden, forget_bias=gj.chrono(T_demo)),
  }
  share = {}
  for label, cell in cells.items():
    params = cell.init(jax.random.key(1), input_size)
    norms = analysis.contribution_norms(cell, params, xs, last_step_loss)
    share[label] = float(analysis.far_share(norms, T_demo // 2))
  assert share["rnn tanh"] < 1e-6
  assert share["gru update_bias=0"] < 1e-6  # z ≈ 0.5 halves the carry path every step
  # f ≈ σ(1) keeps far more than the RNN or the neutral GRU, yet still vanishes over 100 steps
  vanished = max(share["rnn tanh"], share["gru update_bias=0"])
  assert 1e3 * vanished < share["lstm forget_bias=1"] < 1e-3
  assert share["gru chrono"] > 1e-2
  assert share["lstm chrono"] > 1e-2


# ---------------------------------------------------------------------------
# Cells linear in their carry, cells of users, and the padding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_linear_cells_have_an_exactly_diagonal_jacobian_in_0_1(name, x64):
  """∂h_t/∂h_{t−1} of minGRU and minLSTM: off-diagonal exactly 0, diagonal in (0, 1)."""
  cell, params, xs = problem(name, jnp.float64)
  h = normal(7, (2, H), jnp.float64)
  for x in xs:
    J = jax.vmap(jax.jacrev(lambda h, x: cell.step(params, h, x)[0]))(h, x)  # (B, H, H)
    diagonal = jnp.diagonal(J, axis1=-2, axis2=-1)
    assert np.all(np.asarray(J - jax.vmap(jnp.diag)(diagonal)) == 0)
    assert np.all((np.asarray(diagonal) > 0) & (np.asarray(diagonal) < 1))
    aff = cell.affine(params, x[None])
    np.testing.assert_array_equal(diagonal, aff.a[0])


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_diagonal_jacobian_norms_equal_the_generic_sweep(name, x64):
  """The cumulative product of diagonals equals the D-row sweep (with SVDs) it replaces."""
  cell, params, xs = problem(name, jnp.float64)
  generic = cell._replace(affine=None)
  lengths = jnp.array([T, 3])
  for ord in (2, "fro"):
    fast = analysis.jacobian_norms(cell, params, xs, ord=ord, lengths=lengths)
    slow = analysis.jacobian_norms(generic, params, xs, ord=ord, lengths=lengths)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_padding_of_nan_and_inf_leaves_every_sweep_as_zero_padding_does():
  cell, params, xs = problem("lstm", jnp.float32)
  lengths = jnp.array([5, 3])
  valid = (jnp.arange(T)[:, None] < lengths[None])[..., None]
  clean = jnp.where(valid, xs, 0.0)
  for poison in (jnp.nan, jnp.inf):
    dirty = jnp.where(valid, xs, poison)
    for sweep in (
      lambda x: analysis.contribution_norms(cell, params, x, loss_fn, lengths=lengths),
      lambda x: analysis.step_contributions(cell, params, x, loss_fn, lengths=lengths),
      lambda x: analysis.carry_gradients(cell, params, x, loss_fn, lengths=lengths),
      lambda x: analysis.jacobian_norms(cell, params, x, lengths=lengths),
      lambda x: analysis.gate_statistics(cell, params, x, lengths=lengths).near_one,
    ):
      expected = sweep(clean)
      chex.assert_tree_all_finite(expected)
      chex.assert_trees_all_equal(sweep(dirty), expected)


def test_sweeps_accept_int32_lengths_under_x64_and_strict_promotion(x64):
  """What the tasks produce (int32 lengths) meets float64 sweeps without a promotion error."""
  cell, params, xs = problem("gru_after", jnp.float64)
  lengths = jnp.array([T, 3], jnp.int32)
  norms = analysis.contribution_norms(cell, params, xs, loss_fn, lengths=lengths)
  jn = analysis.jacobian_norms(cell, params, xs, lengths=lengths)
  stats = analysis.gate_statistics(cell, params, xs, lengths=lengths)
  assert norms.dtype == jn.dtype == jnp.float64
  np.testing.assert_allclose(
    norms, analysis.contribution_norms(cell, params, xs, loss_fn, lengths=lengths.astype(jnp.int64))
  )
  np.testing.assert_array_equal(jn[3:, 1], 1.0)
  assert 0 < float(stats.mean["z"]) < 1


def _scaled_rnn(a, steps):
  """A linear RNN with ``W_h = a·I``: ``‖∂c_T/∂c_k‖ = |a|^(T−k)`` exactly (powers of two)."""
  cell = gj.rnn(2, activation=lambda v: v)
  params = cell.init(jax.random.key(0), 1)._replace(w_h=a * jnp.eye(2))
  return cell, params, jnp.zeros((steps, 1))


def test_jacobian_norms_keep_huge_finite_norms_and_overflow_to_inf():
  cell, params, xs = _scaled_rnn(2.0, 130)
  for ord in (2, "fro"):
    jn = np.asarray(analysis.jacobian_norms(cell, params, xs, ord=ord))
    scale = 1.0 if ord == 2 else np.sqrt(2.0)
    finite = np.arange(130) >= 130 - 127  # distances up to 127: 2**127 fits float32
    np.testing.assert_allclose(jn[finite], scale * 2.0 ** (130 - np.arange(130))[finite], rtol=1e-6)
    assert np.all(np.isposinf(jn[:2]))  # 2**129 and 2**130: past float32's range, inf, not NaN


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_spectral_jacobian_norms_of_half_precision_cells(dtype):
  """LAPACK has no half-precision SVD: the norm is taken in float32, returned in the dtype."""
  cell, params, xs = _scaled_rnn(0.5, 6)
  params = jax.tree.map(lambda a: a.astype(dtype), params)
  jn = analysis.jacobian_norms(cell, params, xs.astype(dtype))
  assert jn.dtype == dtype
  np.testing.assert_array_equal(np.asarray(jn, np.float64), 0.5 ** (6 - np.arange(6.0)))


def test_shares_of_an_all_zero_curve_are_zero():
  zeros = jnp.zeros((6, 2))
  np.testing.assert_array_equal(analysis.far_share(zeros, 3), 0.0)
  np.testing.assert_array_equal(analysis.near_share(zeros, 3), 0.0)
  mixed = jnp.stack([jnp.zeros(6), jnp.arange(6.0)], axis=1)  # one dead column, one alive
  np.testing.assert_allclose(analysis.far_share(mixed, 3), [0.0, 3.0 / 15.0])


def test_gate_statistics_with_no_valid_step_are_nan():
  cell = gj.gru(4)
  params = cell.init(jax.random.key(0), I)
  for xs, lengths in ((jnp.zeros((0, 2, I)), None), (jnp.ones((3, 2, I)), jnp.zeros(2, int))):
    stats = analysis.gate_statistics(cell, params, xs, lengths=lengths)
    for value in (*stats.near_zero.values(), *stats.dead_units.values(), *stats.keep_plus_write):
      assert np.isnan(float(value))
    assert stats.hidden_norm.shape == (xs.shape[0],)


@pytest.mark.parametrize("name", ["user_dict", "user_array"])
def test_gate_statistics_of_a_cell_without_gates(name):
  """A four-member cell reports no gates: only the hidden-state norm is measured."""
  cell, params, xs = problem(name, jnp.float32)
  stats = analysis.gate_statistics(cell, params, xs, lengths=jnp.array([5, 3]))
  assert stats.near_zero == stats.dead == stats.mean == {} and stats.keep_plus_write is None
  expected = np.linalg.norm(np.asarray(gj.scan(cell, params, xs)[1]), axis=-1)[:3].mean(-1)
  np.testing.assert_allclose(stats.hidden_norm[:3], expected, rtol=1e-6)


@pytest.mark.parametrize(
  ("name", "gates"), [("mgu", {"f"}), ("minimal_rnn", {"u"}), ("min_lstm", {"f", "i"})]
)
def test_gate_statistics_of_the_minimal_cells(name, gates):
  cell, params, xs = problem(name, jnp.float32)
  stats = analysis.gate_statistics(cell, params, xs)
  assert set(stats.mean) == gates
  assert all(0 < float(m) < 1 for m in stats.mean.values())
  np.testing.assert_allclose(stats.keep_plus_write.mean, 1.0, rtol=1e-6)  # keep + write = 1


def test_a_state_that_overflows_to_nan_gives_nan_norms_not_minus_inf():
  """XLA's CPU max skips NaN (all-NaN reads as -inf); the norms keep NaN where it is."""
  cell = gj.gru(16, gate_fn=jax.nn.relu)  # ReLU keep gates above 1: the state overflows
  params = cell.init(jax.random.key(0), 2)
  xs = jax.random.normal(jax.random.key(1), (30, 2, 2))
  assert not bool(jnp.isfinite(gj.scan(cell, params, xs)[1]).all())
  for ord in (2, "fro"):
    jn = np.asarray(analysis.jacobian_norms(cell, params, xs, ord=ord))
    assert not np.isneginf(jn).any() and np.isnan(jn).any()
    assert np.all(np.isnan(jn) | (jn >= 0))
