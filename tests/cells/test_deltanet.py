"""gj.delta_net (SPEC §3d): DeltaNet and Gated DeltaNet against fla's official code.

The generic suites run the registered variants (tests/registry.py: gated with two heads,
ungated, negative eigenvalues with ``key_size=3``) through shapes, dtypes, jit, vmap, scan,
the associative runner with gradients, stacks and training; this file holds what is
specific: the official values (stored fla outputs and the float64 transcriptions, through
``gj.scan`` with lengths, reverse and NaN padding), the official init, the fast paths
(``affine`` through ``impl="associative"``, ``chunkwise``) in values and gradients, the
chunkwise memory, the closed-form Lyapunov exponents, ``parallel_scan``, the analysis and a
short training run.
"""

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
import official_steps as ref
from gatejax import analysis, train

DATA = Path(__file__).parent.parent / "data" / "official"
I = 3

# name -> (options, transcription); H = 4 throughout.
VARIANTS = {
  "gated": (dict(num_heads=2, key_size=3), ref.gated_delta_net_official),
  "plain": (dict(gated=False), ref.delta_net_official),
  "negative": (dict(num_heads=2, negative_eigenvalues=True), ref.gated_delta_net_official),
  "plain_negative": (dict(gated=False, negative_eigenvalues=True), ref.delta_net_official),
}


def cell_of(name, hidden=4):
  return gj.delta_net(hidden, **VARIANTS[name][0])


def official(name, params, xs, carry):
  options, fn = VARIANTS[name]
  return fn(params, xs, carry, negative_eigenvalues=options.get("negative_eigenvalues", False))


def random_params(cell, seed, dtype=np.float64, scale=0.7):
  """Every field drawn (init leaves b_beta at zero), the gated decay kept in its range."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
  p = jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), dtype), shapes)
  if p.a_log is not None:
    p = p._replace(a_log=jnp.asarray(rng.uniform(-1.0, 1.5, p.a_log.shape), dtype))
  return p


def numpy_params(params):
  return gj.DeltaNetParams(*(None if a is None else np.asarray(a) for a in params))


def problem(name, dtype=np.float64, *, steps=9, batch=3, seed=0):
  cell = cell_of(name)
  rng = np.random.default_rng(seed + 100)
  xs = jnp.asarray(rng.standard_normal((steps, batch, I)), dtype)
  carry = jnp.asarray(0.5 * rng.standard_normal(cell.initial_carry((batch,)).shape), dtype)
  return cell, random_params(cell, seed, dtype), xs, carry


def take(tree, b):
  return jax.tree.map(lambda a: a[b], tree)


# ---------------------------------------------------------------------------
# Official values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DATA.glob("*delta_net*.npz")), ids=lambda p: p.stem)
def test_equals_values_computed_by_fla(path, x64):
  """The stored outputs of fla-core 0.6.0's own functions (tests/data/official), params
  built from exactly SPEC's field names."""
  data = np.load(path)
  meta = json.loads(str(data["meta"]))
  dtype = np.float64 if meta["dtype"] == "float64" else np.float32
  fields = {
    f: jnp.asarray(data[f"p_{f}"], dtype) for f in gj.DeltaNetParams._fields if f"p_{f}" in data
  }
  params = gj.DeltaNetParams(**fields)
  hidden, heads = data["ys"].shape[-1], data["c0"].shape[-3]
  cell = gj.delta_net(
    hidden,
    num_heads=heads,
    key_size=data["c0"].shape[-2],
    gated="w_a" in fields,
    negative_eigenvalues=meta["kwargs"]["negative_eigenvalues"],
  )
  carry, ys = gj.scan(
    cell, params, jnp.asarray(data["xs"], dtype), carry=jnp.asarray(data["c0"], dtype)
  )
  # float64: the official loop with its casts made float64; float32: fla verbatim, whose
  # float32 sums run in another order than ours.
  tol = 1e-12 if dtype == np.float64 else 2e-6
  np.testing.assert_allclose(ys, data["ys"], rtol=tol, atol=tol)
  np.testing.assert_allclose(carry, data["c1"], rtol=tol, atol=tol)


def padded_reference(name, params, xs, carry, lengths, reverse):
  """Each sequence alone, unpadded (reversed if asked), through the official transcription."""
  steps, batch = xs.shape[:2]
  finals, ys = [], np.zeros((steps, batch, 4))
  for b, n in enumerate(lengths):
    if n == 0:  # nothing to run: the carry as given
      finals.append(np.asarray(carry[b]))
      continue
    seq = np.asarray(xs[:n, b : b + 1])
    if reverse:
      seq = seq[::-1]
    final, y = official(name, numpy_params(params), seq, np.asarray(carry[b : b + 1]))
    finals.append(final[0])
    ys[:n, b] = y[::-1, 0] if reverse else y[:, 0]
  return np.stack(finals), ys


@pytest.mark.parametrize(
  ("name", "reverse"), [("gated", False), ("gated", True), ("plain", True), ("negative", False)]
)
def test_scan_with_lengths_equals_the_official_loop_float64(name, reverse, x64):
  cell, params, xs, carry = problem(name, seed=1)
  lengths = np.array([9, 4, 0])
  final, ys = gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
  want_final, want_ys = padded_reference(name, params, xs, carry, lengths, reverse)
  np.testing.assert_allclose(final, want_final, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(ys, want_ys, rtol=1e-12, atol=1e-12)


def test_float32_error_against_the_float64_official_loop(x64):
  """The float32 cell against the float64 transcription: the largest error, every variant."""
  worst = {}
  for name in VARIANTS:
    cell, params, xs, carry = problem(name, steps=12, seed=2)
    want_final, want_ys = official(name, numpy_params(params), np.asarray(xs), np.asarray(carry))
    p32, x32, c32 = jax.tree.map(lambda a: a.astype(jnp.float32), (params, xs, carry))
    final, ys = jax.device_get(gj.scan(cell, p32, x32, carry=c32))
    worst[name] = max(np.abs(ys - want_ys).max(), np.abs(final - want_final).max())
  assert max(worst.values()) < 1e-5, worst


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_nan_past_lengths_reaches_no_output_and_no_gradient(poison, x64):
  cell, params, xs, carry = problem("gated", seed=3)
  lengths = jnp.array([9, 4, 0])
  valid = (jnp.arange(9)[:, None] < lengths[None, :])[..., None]

  def loss(p, x, c, reverse):
    final, ys = gj.scan(cell, p, x, carry=c, lengths=lengths, reverse=reverse)
    return jnp.sum(jnp.sin(ys)) + jnp.sum(final**2)

  grad = jax.jit(jax.value_and_grad(loss, (0, 1, 2)), static_argnums=3)
  for reverse in (False, True):
    clean = grad(params, jnp.where(valid, xs, 0.0), carry, reverse)
    dirty = grad(params, jnp.where(valid, xs, poison), carry, reverse)
    chex.assert_tree_all_finite(clean)
    chex.assert_trees_all_equal(dirty, clean)


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def ks_uniform(values, low, high):
  return ref.ks_statistic(values, ref.uniform_cdf(low, high)), ref.ks_critical(values.size, 1e-6)


@pytest.mark.parametrize("gated", [True, False])
def test_init_follows_the_official_spec(gated):
  """Many heads (one value each), so that a_log and dt_bias have enough draws to test."""
  hidden, heads, inputs = 512, 512, 64
  cell = gj.delta_net(hidden, num_heads=heads, key_size=2, gated=gated)
  params = cell.init(jax.random.key(4), inputs)
  spec = ref.delta_net_official_init(inputs, hidden, num_heads=heads, key_size=2, gated=gated)
  ref.check_init(params, spec)
  # SPEC leaves the projections open: the layers' torch nn.Linear default, U(±1/sqrt(I)).
  bound = 1 / np.sqrt(inputs)
  for name in ("w_q", "w_k", "w_v", "w_beta") + (("w_a",) if gated else ()):
    values = np.asarray(getattr(params, name), np.float64).ravel()
    assert np.abs(values).max() <= bound
    stat, crit = ks_uniform(values, -bound, bound)
    assert stat <= crit, name
  np.testing.assert_array_equal(params.b_beta, 0.0)
  if gated:
    assert np.isfinite(np.asarray(params.a_log)).all()  # exp(a_log) in (0, 16], never log 0
  else:
    assert params.w_a is None and params.a_log is None and params.dt_bias is None
    assert len(jax.tree.leaves(params)) == 5


# ---------------------------------------------------------------------------
# The optional members and the fast paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gated", "plain"])
def test_protocol_check(name, x64):
  cell, params, xs, carry = problem(name, steps=3, seed=5)
  gj.protocol.check(cell, params, xs, carry=carry)


def step_loop(cell, params, xs, carry, valid):
  """The reference: a loop over ``cell.step`` (``lax.scan``), holding the carry and writing
  zeros where ``valid`` is False."""

  def body(c, inputs):
    x, v = inputs
    new, y = cell.step(params, c, x)
    return jnp.where(v[:, None, None, None], new, c), jnp.where(v[:, None], y, 0.0)

  return jax.lax.scan(body, carry, (xs, valid))


def masked_chunkwise(cell, params, xs, carry, valid, size):
  """``cell.chunkwise`` as the runner calls it: the padding zeroed, its outputs dropped."""
  final, ys = cell.chunkwise(params, jnp.where(valid[..., None], xs, 0.0), carry, valid, size)
  return final, jnp.where(valid[..., None], ys, 0.0)


def value_and_grad(run, weights):
  """``run``'s weighted loss and its gradient for params, xs and carry, jitted; ``valid`` is
  an argument, so one compilation serves every mask."""
  w_c, w_y = weights

  def loss(params, xs, carry, valid):
    final, ys = run(params, xs, carry, valid)
    return jnp.sum(w_c * final) + jnp.sum(w_y * jnp.tanh(ys))

  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


# Rows: whole; padded at the end (gj.scan's lengths); padded at the start (how the runner lays
# out reverse=True); no valid step; holes anywhere (any mask holds the carry where False).
MASKS = np.array(
  [
    [1] * 11,
    [1] * 6 + [0] * 5,
    [0] * 5 + [1] * 6,
    [0] * 11,
    [1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1],
  ],
  bool,
).T


@pytest.mark.parametrize(("name", "sizes"), [("gated", (4, 1, 16)), ("plain_negative", (4,))])
def test_chunkwise_equals_the_step_loop_in_values_and_gradients(name, sizes, x64):
  """Odd T = 11 in chunks of 4 (not dividing 11): values and gradients for params, xs and
  the initial carry; chunks of 1 and 16 (more than T): values. ``impl="associative"`` (the
  matrix-form affine) is compared with the step loop, values and gradients, lengths and
  both directions, for every registered variant in tests/run/test_scan.py."""
  cell, params, xs, carry = problem(name, steps=11, batch=5, seed=6)
  rng = np.random.default_rng(7)
  weights = (rng.standard_normal(carry.shape), rng.standard_normal((11, 5, 4)))
  valid = jnp.asarray(MASKS)
  want = value_and_grad(lambda p, x, c, v: step_loop(cell, p, x, c, v), weights)(
    params, xs, carry, valid
  )
  final, ys = step_loop(cell, params, xs, carry, valid)
  np.testing.assert_array_equal(final[3], carry[3])  # the reference holds padded steps exactly
  for size in sizes:
    if size == sizes[0]:
      chunked = value_and_grad(
        lambda p, x, c, v, size=size: masked_chunkwise(cell, p, x, c, v, size), weights
      )
      got = chunked(params, xs, carry, valid)
      chex.assert_trees_all_close(got, want, rtol=1e-11, atol=1e-11)
    else:
      got = jax.jit(masked_chunkwise, static_argnums=(0, 5))(cell, params, xs, carry, valid, size)
      chex.assert_trees_all_close(got, (final, ys), rtol=1e-11, atol=1e-11)


def test_chunkwise_defaults_and_no_steps(x64):
  """``valid=None`` (every step valid) and ``chunk_size=None`` (64, more than T here)."""
  cell, params, xs, carry = problem("negative", steps=7, seed=8)
  want = official("negative", numpy_params(params), np.asarray(xs), np.asarray(carry))
  got = jax.jit(cell.chunkwise)(params, xs, carry)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)
  final, ys = cell.chunkwise(params, xs[:0], carry)
  assert ys.shape == (0, 3, 4)
  np.testing.assert_array_equal(final, carry)


def test_chunkwise_float32_error_with_strong_decay(x64):
  """Chunks of 8 over 24 steps of strong decay (log α down to about −10 per step): the
  within-chunk decays, sums of the log-decays (no differences of cumulative sums), stay
  float32-accurate against the float64 transcription."""
  cell, params, xs, carry = problem("gated", steps=24, seed=9)
  params = params._replace(a_log=params.a_log + 1.5)
  want_final, want_ys = official("gated", numpy_params(params), np.asarray(xs), np.asarray(carry))
  f32 = jax.tree.map(lambda a: a.astype(jnp.float32), (params, xs, carry))
  got = jax.jit(cell.chunkwise, static_argnames="chunk_size")(*f32, None, chunk_size=8)
  final, ys = jax.device_get(got)
  assert max(np.abs(ys - want_ys).max(), np.abs(final - want_final).max()) < 1e-5


def shapes_in(jaxpr):
  """Every intermediate's shape, inside scans, whiles and conds too."""
  for eqn in jaxpr.eqns:
    yield from (getattr(v.aval, "shape", ()) for v in eqn.outvars)
    for value in eqn.params.values():
      for inner in value if isinstance(value, tuple | list) else (value,):
        inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's Jaxpr
        if hasattr(inner, "eqns"):
          yield from shapes_in(inner)


def test_chunkwise_memory_is_linear_in_time():
  """The forward and backward program of T = 1024 in chunks of 16 holds nothing larger than
  T·B·NH·C·(K + V) elements (O(T·C)); the (T, T) matrix of the parallel form never appears."""
  cell = cell_of("gated")  # NH = 2, K = 3, V = 2
  params = cell.init(jax.random.key(0), I)
  carry, steps = cell.initial_carry((2,)), 1024
  loss = lambda p, x: jnp.sum(cell.chunkwise(p, x, carry, None, 16)[1])
  jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1)))(params, jnp.ones((steps, 2, I)))
  sizes = [int(np.prod(s)) for s in shapes_in(jaxpr.jaxpr)]
  assert max(sizes) <= steps * 2 * 2 * 16 * (3 + 2), max(sizes)
  assert max(sizes) >= steps * 2 * 2 * 16  # the (C, C) blocks of every chunk are there


# ---------------------------------------------------------------------------
# Dynamics, Newton, analysis
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gated", "plain", "negative"])
def test_lyapunov_exponents_with_a_fixed_unit_key(name, x64):
  """Key along the first key axis in every head: each step's Jacobian is diagonal,
  α_t on the (K−1)·V directions orthogonal to k and α_t(1 − β_t‖k‖²) on the V along it, so
  the exponents are mean_t log α_t and mean_t log|α_t(1 − β_t‖k‖²)| (‖k‖² = 1 − 1e-18 here;
  α = 1 ungated)."""
  cell, params, xs, _ = problem(name, steps=12, seed=10)
  heads, key, value = cell.initial_carry(()).shape
  # x_0 = ±1 carries the key, 1e6 before the l2norm: ‖k‖² = 1e12 / (1e12 + 1e-6).
  w_k = np.zeros((I, heads * key))
  w_k[0, ::key] = 1e6
  params = params._replace(w_k=jnp.asarray(w_k))
  xs = xs.at[:, :, 0].set(jnp.sign(xs[:, :, 0]))
  lam = gj.dynamics.lyapunov_exponents(cell, params, xs)
  p, x = numpy_params(params), np.asarray(xs)
  negative = cell.options.negative_eigenvalues
  _, k, _, beta, g = ref.delta_net_inputs(p, x, negative_eigenvalues=negative)
  log_alpha = np.zeros_like(beta) if g is None else g
  norm2 = np.sum(k * k, axis=-1)
  along = np.mean(log_alpha + np.log(np.abs(1 - beta * norm2)), axis=0)  # (B, NH)
  across = np.mean(log_alpha, axis=0)
  want = np.concatenate(
    [np.repeat(along, value, axis=-1), np.repeat(across, (key - 1) * value, axis=-1)], axis=-1
  )
  want = -np.sort(-want, axis=-1)
  assert lam.shape == (3, heads * key * value)
  np.testing.assert_allclose(lam, want, rtol=1e-10, atol=1e-10)


def test_parallel_scan_is_one_exact_solve(x64):
  """With lengths, reversed (padding first: the padded steps must hold the initial carry)."""
  cell, params, xs, carry = problem("gated", steps=12, seed=11)
  reverse = True
  lengths = jnp.array([12, 5, 0])
  final, ys, info = gj.parallel_scan(
    cell, params, xs, carry=carry, lengths=lengths, reverse=reverse
  )
  want = gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
  chex.assert_trees_all_close((final, ys), want, rtol=1e-12, atol=1e-12)
  assert bool(jnp.all(info.converged)) and int(jnp.max(info.iterations)) <= 1


def test_contributions_sum_to_the_gradient(x64):
  cell, params, xs, carry = problem("negative", steps=7, seed=12)
  lengths = jnp.array([7, 3, 1])
  loss_fn = lambda ys, final: jnp.sum(jnp.tanh(ys)) + jnp.sum(final**2)
  contrib = analysis.step_contributions(cell, params, xs, loss_fn, carry=carry, lengths=lengths)
  run = lambda p: gj.scan(cell, p, xs, carry=carry, lengths=lengths)
  grad = jax.grad(lambda p: loss_fn(run(p)[1], run(p)[0]))(params)
  total = jax.tree.map(lambda c: c.sum(0), contrib)
  chex.assert_trees_all_close(total, grad, rtol=1e-12, atol=1e-12)


def test_jacobian_norms_read_from_the_matrix_form_equal_jacrev(x64):
  """analysis.jacobian_norms takes the products of a_t (the matrix form); the reference is
  the product of the step Jacobians that jax.jacrev gives, per batch element, lengths
  included (past its length a sequence's carry is its final carry: the identity)."""
  cell, params, xs, carry = problem("gated", steps=6, batch=2, seed=13)
  lengths = np.array([6, 4])
  size = carry[0].size
  step = lambda c, x: cell.step(params, c, x)[0]
  jacobian = jax.jit(jax.vmap(jax.jacrev(step)))  # over the batch: one (D, D) per element
  c, jacobians = carry, []
  for x in xs:
    jacobians.append(np.asarray(jacobian(c, x)).reshape(-1, size, size))
    c = step(c, x)
  for ord in (2, "fro"):
    got = analysis.jacobian_norms(cell, params, xs, ord=ord, carry=carry, lengths=lengths)
    for b, n in enumerate(lengths):
      product = np.eye(size)
      want = np.zeros(6)
      for k in reversed(range(6)):
        if k < n:
          product = product @ jacobians[k][b]  # ∂c_n/∂c_k = J_n ⋯ J_{k+1}, J_t at step t
        want[k] = np.linalg.norm(product, 2 if ord == 2 else "fro")
      np.testing.assert_allclose(np.asarray(got)[:, b], want, rtol=1e-10, err_msg=str(ord))


def test_stack_and_a_short_training_run():
  """Two layers (gated with heads, then ungated) run as a stack, and a gated cell trains:
  every parameter moves, the loss stays finite."""
  first, second = cell_of("gated"), cell_of("plain")
  net = gj.stack([first, second])
  params = net.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (6, 2, I))
  lengths = jnp.array([6, 3])
  _, ys = gj.scan_stack(net, params, xs, lengths=lengths)
  _, hidden = gj.scan(first, params[0], xs, lengths=lengths)
  _, want = gj.scan(second, params[1], hidden, lengths=lengths)
  chex.assert_trees_all_close(ys, want, rtol=1e-6, atol=1e-6)

  task, key = gj.tasks.adding(6), jax.random.key(0)
  result = train.fit(first, task, key=key, steps=3, batch_size=8, eval_every=0, progress=False)
  assert not result.history.diverged and all(np.isfinite(result.history.loss))
  start = train.init_model(first, task, jax.random.split(jax.random.split(key)[0])[0])
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params, start)
  assert all(jax.tree.leaves(moved))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    (dict(num_heads=3), ValueError, "num_heads=3 must divide hidden_size=4"),
    (dict(num_heads=0), ValueError, "num_heads"),
    (dict(key_size=0), ValueError, "key_size"),
    (dict(key_size=2.0), TypeError, "key_size"),
    (dict(gated=1), TypeError, "gated must be a bool"),
    (dict(negative_eigenvalues="yes"), TypeError, "negative_eigenvalues must be a bool"),
  ],
)
def test_bad_options(kwargs, error, match):
  with pytest.raises(error, match=match):
    gj.delta_net(4, **kwargs)


def test_bad_arguments():
  gated, plain = cell_of("gated"), cell_of("plain")
  params = gated.init(jax.random.key(0), I)
  xs, carry = jnp.ones((5, 2, I)), gated.initial_carry((2,))
  with pytest.raises(TypeError, match="params"):  # the gated fields given to the ungated cell
    plain.step(params, plain.initial_carry((2,)), xs[0])
  with pytest.raises(ValueError, match="carry must have shape"):
    gated.chunkwise(params, xs, carry[:1])
  with pytest.raises(ValueError, match="valid must have shape"):
    gated.chunkwise(params, xs, carry, jnp.ones((5,), bool))
  with pytest.raises(TypeError, match="valid must be a bool"):
    gated.chunkwise(params, xs, carry, jnp.ones((5, 2)))
  with pytest.raises(ValueError, match="chunk_size"):
    gated.chunkwise(params, xs, carry, None, 0)


@pytest.mark.parametrize("size", [1, 2, 5, 16, 17])
def test_the_chunks_triangular_inverse_equals_numpys(size, x64):
  """The chunk form inverts ``I + A`` by block doubling (matmuls only: LAPACK's trsm under
  differentiation hung on two CPU threads), equal to NumPy's inverse, any chunk size."""
  from gatejax.cells.deltanet import _unit_lower_inverse

  rng = np.random.default_rng(size)
  k = rng.normal(size=(2, 3, size, 4))
  k /= np.linalg.norm(k, axis=-1, keepdims=True)
  beta = rng.uniform(0, 2, size=(2, 3, size, 1))
  a = np.tril(beta * (k @ np.swapaxes(k, -1, -2)), -1)
  want = np.linalg.inv(np.eye(size) + a)
  np.testing.assert_allclose(_unit_lower_inverse(jnp.asarray(a)), want, rtol=1e-12, atol=1e-12)
