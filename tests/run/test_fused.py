"""The fast paths of the sequence runner equal the plain path: values and gradients.

The reference is JAX's autodiff of the plain scan (``impl="autodiff"`` with one block of
the whole sequence: the projection hoisted, no remat), itself checked against a Python
loop over ``cell.step`` by the core tests. Every fast path (the hand-written VJP of
:mod:`gatejax.run.fused`, blocks, remat segments, the generic path for cells without a
split, the gates' gradient) must give the same forward values and the same gradients
with respect to the parameters, the inputs and the initial carry, with ``lengths`` and
``reverse``: float64 to 1e-12, float32 to 1e-5.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from registry import LINEAR, PATHS, make

T, BATCH, INPUT, HIDDEN = 7, (2, 2), 3, 4
LENGTHS = np.array([[7, 4], [0, 1]])


@functools.cache  # one cell object per name, so that compiled functions are reused
def build(name: str):
  return make(name, HIDDEN)


def problem(cell: gj.Cell, dtype, seed: int = 0):
  """Every parameter drawn (not init's zeros), a non-zero initial carry, inputs, lengths."""
  rng = np.random.default_rng(seed)
  draw = lambda shape, scale=0.6: jnp.asarray((scale * rng.standard_normal(shape)).astype(dtype))
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), INPUT))
  params = jax.tree.map(lambda s: draw(s.shape), shapes)
  carry = jax.tree.map(lambda s: draw(s.shape, 0.5), cell.initial_carry(BATCH, dtype))
  xs = draw((T, *BATCH, INPUT), 1.0)
  return params, xs, carry, LENGTHS


def loss_fn(cell: gj.Cell, lengths, reverse: bool, *, with_gates: bool = False, **options):
  """A loss through the outputs (weighted by step), the final carry and (optionally) the gates."""

  def loss(params, xs, carry):
    lens = jnp.asarray(lengths)  # int32 or int64, whichever mode traces the loss
    total = 0.0
    if with_gates:
      c, ys, gates = gj.scan_with_gates(
        cell, params, xs, carry=carry, lengths=lens, reverse=reverse, **options
      )
      total = sum(jnp.sum(jnp.sin(g)) for g in jax.tree.leaves(gates))
    else:
      c, ys = gj.scan(cell, params, xs, carry=carry, lengths=lens, reverse=reverse, **options)
    weights = jnp.linspace(0.5, 1.5, ys.shape[0], dtype=ys.dtype).reshape((-1, 1, 1, 1))
    return total + jnp.sum(weights * ys**2) + sum(jnp.sum(jnp.cos(x)) for x in jax.tree.leaves(c))

  return loss


PLAIN = dict(impl="autodiff", block=T)


@functools.cache
def reference(cell: gj.Cell, reverse: bool, with_gates: bool, dtype: str):
  """The plain path's loss and gradients, compiled once per cell (shared across tests).

  Keyed on the dtype too: one jitted function must not serve both x64 modes.
  """
  loss = loss_fn(cell, LENGTHS, reverse, with_gates=with_gates, **PLAIN)
  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


def assert_same(
  cell, params, xs, carry, lengths, tol, *, reverse=False, with_gates=False, **options
):
  """Forward loss and gradients (params, xs, carry) of ``options`` equal the plain path's."""
  loss = loss_fn(cell, lengths, reverse, with_gates=with_gates, **options)
  fast = jax.value_and_grad(loss, (0, 1, 2))
  v_ref, g_ref = reference(cell, reverse, with_gates, xs.dtype.name)(params, xs, carry)
  v_fast, g_fast = jax.jit(fast)(params, xs, carry)
  chex.assert_trees_all_close(v_fast, v_ref, rtol=tol, atol=tol)
  chex.assert_trees_all_close(g_fast, g_ref, rtol=tol, atol=tol)


# Direction handling is the same code for every cell: each cell runs one direction here,
# both directions are covered, and the layout tests below mix them again.
DIRECTIONS = [(name, k % 2 == 1) for k, name in enumerate(PATHS)]


@pytest.mark.parametrize("name, reverse", DIRECTIONS)
def test_fused_equals_autodiff_float64(x64, name, reverse):
  """Default options (fused VJP, the backend's block) against the plain path, every cell."""
  cell = build(name)
  assert_same(cell, *problem(cell, np.float64), 1e-12, reverse=reverse)


@pytest.mark.parametrize(
  "name, options",
  [
    ("lstm", dict(block=3, reverse=True)),  # 7 steps padded to 9: steps past every length
    ("gru_after", dict(block=T)),  # one block: the projection hoisted over the sequence
    ("lstm", dict(remat=2)),  # segments of 2 steps, recomputed in the backward pass
    ("gru_before", dict(remat=True, block=2, reverse=True)),  # generic path, in segments
    ("rnn_tanh", dict(impl="autodiff", remat=3, reverse=True)),  # checkpointed autodiff
  ],
)
def test_layouts_equal_autodiff_float64(x64, name, options):
  cell = build(name)
  assert_same(cell, *problem(cell, np.float64, seed=1), 1e-12, **options)


def test_generic_path_equals_split_path_float64(x64):
  """A cell stripped of its split runs the generic VJP (pullback through ``recur``)."""
  cell = build("lstm")._replace(split=None)
  assert_same(cell, *problem(cell, np.float64, seed=2), 1e-12, block=2, reverse=True)


@pytest.mark.parametrize("name", ["lstm", "gru_before"])
def test_gates_gradient_float64(x64, name):
  """``scan_with_gates``: the gates' cotangent flows through the fused VJP too."""
  cell = build(name)
  assert_same(
    cell, *problem(cell, np.float64, seed=3), 1e-12, with_gates=True, block=3, reverse=True
  )


@pytest.mark.parametrize("name, reverse", [("lstm", False), ("gru_after", True)])
def test_fused_equals_autodiff_float32(name, reverse):
  cell = build(name)
  assert_same(cell, *problem(cell, np.float32, seed=5), 1e-5, reverse=reverse)


def test_stack_options_reach_every_layer(x64):
  net = gj.stack([gj.rnn(HIDDEN), gj.rnn(3)])
  params = net.init(jax.random.key(0), INPUT, dtype=jnp.float64)
  xs = jax.random.normal(jax.random.key(1), (T, *BATCH, INPUT), jnp.float64)

  def loss(params, **options):
    _, ys = gj.scan_stack(net, params, xs, lengths=jnp.asarray(LENGTHS), reverse=True, **options)
    return jnp.sum(ys**2)

  plain = jax.grad(lambda p: loss(p, **PLAIN))(params)
  fast = jax.grad(lambda p: loss(p, remat=3, block=2))(params)
  chex.assert_trees_all_close(fast, plain, rtol=1e-12, atol=1e-12)


def test_bfloat16_matmuls_close_to_float32():
  """bfloat16 operands, float32 state: outputs and gradients within bfloat16 rounding."""
  cell = gj.lstm(32)
  params = cell.init(jax.random.key(0), 16)
  xs = jax.random.normal(jax.random.key(1), (20, 8, 16))

  def run(**options):
    loss = lambda p: gj.scan(cell, p, xs, **options)
    (carry, ys), pull = jax.vjp(loss, params)
    (grad,) = pull((jax.tree.map(jnp.zeros_like, carry), 2 * ys))  # gradient of sum(ys**2)
    return carry, ys, grad

  _, ys32, g32 = run()
  carry, ys16, g16 = run(matmul_dtype=jnp.bfloat16)
  assert ys16.dtype == jnp.float32 and carry.c.dtype == jnp.float32
  err = float(jnp.max(jnp.abs(ys16 - ys32)))
  assert 0 < err < 3e-2, err  # nonzero: the matmuls did run in bfloat16
  rel = max(
    float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16), strict=True)
  )
  assert rel < 5e-2, rel
  # The fused VJP and JAX's autodiff of the same bfloat16 forward pass agree.
  _, _, g16_autodiff = run(matmul_dtype=jnp.bfloat16, impl="autodiff")
  chex.assert_trees_all_close(g16, g16_autodiff, rtol=1e-4, atol=1e-4)


def test_remat_bounds_activation_memory():
  """Compiled temporary memory of the gradient: segments keep a fraction of the residuals."""
  cell = gj.lstm(16)
  params = cell.init(jax.random.key(0), 8)
  xs = jnp.zeros((512, 4, 8))

  def temp_bytes(**options):
    grad = jax.grad(lambda p: jnp.sum(gj.scan(cell, p, xs, **options)[1] ** 2))
    return jax.jit(grad).lower(params).compile().memory_analysis().temp_size_in_bytes

  assert temp_bytes(remat=True) < 0.5 * temp_bytes()


@pytest.mark.parametrize(
  "options, error",
  [
    (dict(impl="cudnn"), ValueError),
    (dict(remat=0), ValueError),
    (dict(remat=2.5), ValueError),
    (dict(block=0), ValueError),
    (dict(block=True), ValueError),
    (dict(matmul_dtype=jnp.int8), TypeError),
  ],
)
def test_bad_options_raise(options, error):
  cell = gj.gru(4)
  params = cell.init(jax.random.key(0), 2)
  with pytest.raises(error, match=next(iter(options))):
    gj.scan(cell, params, jnp.ones((3, 2)), **options)


def test_bfloat16_needs_a_split_cell():
  cell = gj.gru(4, reset="before")
  params = cell.init(jax.random.key(0), 2)
  with pytest.raises(ValueError, match="matmul_dtype"):
    gj.scan(cell, params, jnp.ones((3, 2)), matmul_dtype=jnp.bfloat16)


# ---------------------------------------------------------------------------
# Forward mode and second order
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lstm", "gru_before", "min_gru"])
def test_forward_mode_works_under_the_default_impl(x64, name):
  """jax.jvp and jax.jacfwd of gj.scan (and jax.linearize with impl="autodiff") equal the
  reverse-mode Jacobian."""
  cell = build(name)
  params, xs, carry, lengths = problem(cell, np.float64, seed=4)
  run = lambda xs: gj.scan(cell, params, xs, carry=carry, lengths=jnp.asarray(lengths))[1]
  jacobian = jax.jacrev(run)(xs)  # reverse mode: the fused VJP (or the associative scan)
  tangent = jnp.ones_like(xs)
  expected = jnp.tensordot(jacobian, tangent, axes=tangent.ndim)
  _, jvp = jax.jvp(run, (xs,), (tangent,))
  chex.assert_trees_all_close(jvp, expected, rtol=1e-12, atol=1e-12)
  chex.assert_trees_all_close(jax.jacfwd(run)(xs), jacobian, rtol=1e-12, atol=1e-12)
  # jax.linearize traces as jax.grad does (the same tracer), so gj.scan cannot tell them
  # apart: the linear map it returns runs forward, and needs impl="autodiff".
  plain = lambda xs: gj.scan(
    cell, params, xs, carry=carry, lengths=jnp.asarray(lengths), impl="autodiff"
  )[1]
  _, linear = jax.linearize(plain, xs)
  chex.assert_trees_all_close(linear(tangent), expected, rtol=1e-12, atol=1e-12)


def test_forward_mode_with_impl_fused_says_what_to_pass():
  cell = gj.rnn(3)
  params = cell.init(jax.random.key(0), 2)
  run = lambda xs: gj.scan(cell, params, xs, impl="fused")[1]
  with pytest.raises(TypeError, match=r'impl="fused" has a hand-written reverse-mode.*"autodiff"'):
    jax.jvp(run, (jnp.ones((4, 2)),), (jnp.ones((4, 2)),))


@pytest.mark.slow
def test_second_order_through_the_fused_vjp(x64):
  """grad of grad (Hessian-vector products) differentiates the hand-written backward pass."""
  cell = build("gru_after")
  params, xs, carry, lengths = problem(cell, np.float64, seed=6)
  lens = jnp.asarray(lengths)

  def loss(xs, impl):
    return jnp.sum(gj.scan(cell, params, xs, carry=carry, lengths=lens, impl=impl)[1] ** 3)

  direction = jnp.ones_like(xs)
  hvp = lambda impl: jax.grad(lambda x: jnp.vdot(jax.grad(loss)(x, impl), direction))(xs)
  chex.assert_trees_all_close(hvp("fused"), hvp("autodiff"), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# What lies past the lengths never reaches a gradient
# ---------------------------------------------------------------------------

POISONS = {"nan": jnp.nan, "inf": jnp.inf}


def impls_of(name):
  return ["fused", "autodiff"] + (["associative"] if name in LINEAR else [])


@pytest.mark.parametrize("name", PATHS)
def test_nan_and_inf_past_lengths_leave_gradients_as_zero_padding_does(name):
  """Every cell and implementation: the gradient with NaN (or inf) padding equals the
  gradient with zero padding, exactly, for params, the valid inputs and the carry."""
  cell = build(name)
  params, xs, carry, lengths = problem(cell, np.float32, seed=8)
  valid = (np.arange(T).reshape(T, 1, 1) < lengths)[..., None]
  zero_padded = jnp.where(valid, xs, 0.0)
  for impl in impls_of(name):
    loss = loss_fn(cell, lengths, False, impl=impl)
    grad = jax.jit(jax.grad(loss, (0, 1, 2)))
    expected = grad(params, zero_padded, carry)
    chex.assert_tree_all_finite(expected)
    for poison in POISONS.values():
      got = grad(params, jnp.where(valid, xs, poison), carry)
      chex.assert_trees_all_equal(got, expected)


# ---------------------------------------------------------------------------
# One value that carries the speed options, accepted everywhere a sequence is run
# ---------------------------------------------------------------------------


def test_scan_options_equal_the_keywords():
  cell = build("lstm")
  params, xs, carry, _ = problem(cell, np.float32, seed=9)
  options = gj.ScanOptions(remat=3, block=2, matmul_dtype=jnp.bfloat16)
  by_value = gj.scan(cell, params, xs, carry=carry, options=options)
  by_keywords = gj.scan(cell, params, xs, carry=carry, remat=3, block=2, matmul_dtype="bfloat16")
  chex.assert_trees_all_equal(by_value, by_keywords)
  assert options == gj.ScanOptions(remat=3, block=2, matmul_dtype="bfloat16")
  assert len({options, gj.ScanOptions(remat=3, block=2, matmul_dtype=jnp.bfloat16)}) == 1
  with pytest.raises(ValueError, match="either options= or the keyword remat"):
    gj.scan(cell, params, xs, options=options, remat=2)


@pytest.mark.slow
def test_options_reach_training_the_nnx_layer_and_the_analysis():
  """bfloat16 matmuls change every result a little: proof that the option arrived.

  (``train.fit`` hands ``options`` to ``train_step`` and ``evaluate`` as it is.)"""
  from flax import nnx

  from gatejax import analysis, tasks, train

  bf16 = gj.ScanOptions(matmul_dtype=jnp.bfloat16)
  cell, task = gj.lstm(8), tasks.adding(6)
  opt = train.make_optimizer()
  state = train.init_state(cell, task, jax.random.key(0), opt)

  def differs_a_little(a, b, scale):
    gap = float(jnp.max(jnp.abs(a - b)))
    assert 0 < gap < scale, gap

  _, m32 = train.train_step(cell, task, opt, state, batch_size=8)
  _, m16 = train.train_step(cell, task, opt, state, batch_size=8, options=bf16)
  differs_a_little(m32.loss, m16.loss, 2e-2)

  layer = gj.nnx.Recurrent(cell, 2, rngs=nnx.Rngs(0), options=bf16)
  xs = jax.random.normal(jax.random.key(1), (5, 3, 2))
  _, ys16 = layer(xs)
  _, ys32 = layer(xs, options=gj.ScanOptions())
  differs_a_little(ys16, ys32, 2e-2)

  params = state.params.cell
  loss = lambda ys, c: jnp.sum(ys[-1] ** 2)
  n16 = analysis.contribution_norms(cell, params, xs, loss, options=bf16)
  n32 = analysis.contribution_norms(cell, params, xs, loss)
  differs_a_little(n16, n32, 5e-2 * float(n32.max()))


def test_int32_lengths_under_x64(x64):
  """Step indices and lengths meet in one integer type whatever the x64 mode."""
  cell = gj.rnn(3)
  params = cell.init(jax.random.key(0), 2, dtype=jnp.float64)
  xs = jnp.ones((4, 2, 2), jnp.float64)
  lengths = jnp.array([4, 1], jnp.int32)
  _, ys = gj.scan(cell, params, xs, lengths=lengths)
  assert bool((ys[1:, 1] == 0).all()) and bool((ys[:, 0] != 0).all())


def test_an_integer_carry_leaf_runs_with_lengths_and_has_no_gradient():
  """A step counter in the carry (int32): every implementation runs it with lengths, counts
  only the valid steps, and differentiates the float leaves (issue 20, item 10: the fused VJP
  failed with JAX's float0 TypeError)."""
  from user_cells import Counting

  cell = Counting(3)
  params = cell.init(jax.random.key(0), 2)
  xs = jax.random.normal(jax.random.key(1), (5, 2, 2))
  lengths = jnp.array([5, 2])

  def loss(p, impl):
    carry, ys = gj.scan(cell, p, xs, lengths=lengths, impl=impl)
    return jnp.sum(ys**2) + jnp.sum(carry["h"] ** 2), carry["count"]

  (want, count), grads = jax.value_and_grad(loss, has_aux=True)(params, "autodiff")
  np.testing.assert_array_equal(count, lengths)
  (got, count), fused = jax.value_and_grad(loss, has_aux=True)(params, "fused")
  np.testing.assert_array_equal(count, lengths)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  chex.assert_trees_all_close(fused, grads, rtol=1e-5, atol=1e-6)
