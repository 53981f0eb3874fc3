"""The cells: a generic suite over the registry, then each cell against independent references.

References: NumPy transcriptions of SPEC §2 and §3b (tests/references.py, not calling the
library; a user's cell carries its own), the Dive-into-Deep-Learning GRU (``reset="before"``)
and Flax linen's ``GRUCell``, ``LSTMCell`` and ``MGUCell`` with weights mapped by hand.
"""

import itertools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import gatejax as gj
import registry
from references import as_numpy, blocks, np_relu, np_sigmoid, np_soft_sign
from registry import CLASSIC, NAMES, make, normal, random_params, reference_step

H, I = 5, 3


def random_carry(cell, seed, batch_shape, dtype=np.float32):
  return registry.random_carry(cell, seed, batch_shape, dtype)


def random_input(seed, shape, dtype=np.float32):
  return normal(np.random.default_rng(seed), shape, dtype)


def wide(a):
  """float64, or complex128 for a complex leaf (the LRU's carry)."""
  a = np.asarray(a)
  return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def assert_tree_close(actual, expected, tol):
  chex.assert_trees_all_equal_structs(actual, expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(wide(a), e, rtol=tol, atol=tol)


def max_error(actual, expected):
  return max(
    float(np.abs(wide(a) - wide(e)).max())
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True)
  )


# ---------------------------------------------------------------------------
# Generic suite over the registry
# ---------------------------------------------------------------------------


class GenericCellTest(chex.TestCase):
  """Every registered cell: shapes, dtypes, jit and no jit, each against the NumPy reference."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(name=NAMES, dtype=["float32", "float64"])
  def test_step_matches_numpy(self, name, dtype, batch_shape=(2, 3)):
    with jax.enable_x64(dtype == "float64"):
      cell = make(name, H)
      params = random_params(cell, 0, I, dtype=dtype)
      chex.assert_trees_all_equal_dtypes(params, jax.tree.map(lambda a: a.astype(dtype), params))
      carry = random_carry(cell, 1, batch_shape, dtype)
      x = random_input(2, (*batch_shape, I), dtype)

      new_carry, y = self.variant(cell.step)(params, carry, x)

      chex.assert_shape(y, (*batch_shape, H))
      chex.assert_type(y, dtype)
      chex.assert_trees_all_equal_shapes_and_dtypes(new_carry, carry)
      expected_carry, expected_y = reference_step(name, cell, params, carry, x)
      tol = 1e-12 if dtype == "float64" else 1e-5
      assert_tree_close(new_carry, expected_carry, tol)
      assert_tree_close(y, expected_y, tol)


@pytest.mark.parametrize("batch_shape", [(), (3,)])
@pytest.mark.parametrize("name", NAMES)
def test_other_batch_shapes_match_numpy(name, batch_shape):
  cell = make(name, H)
  params = random_params(cell, 0, I)
  carry = random_carry(cell, 1, batch_shape)
  x = random_input(2, (*batch_shape, I))
  new_carry, y = jax.jit(cell.step)(params, carry, x)
  chex.assert_shape(y, (*batch_shape, H))
  chex.assert_trees_all_equal_shapes_and_dtypes(new_carry, carry)
  expected_carry, expected_y = reference_step(name, cell, params, carry, x)
  assert_tree_close(new_carry, expected_carry, 1e-5)
  assert_tree_close(y, expected_y, 1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_initial_carry_is_zeros_of_the_asked_shape_and_dtype(name, x64):
  cell = make(name, H)
  carry = cell.initial_carry((2, 3), jnp.float64)
  # Leaves (*batch, ...) after the cell's own unbatched carry (a leaf need not end in H: the
  # mLSTM carries (NH, K, V) matrices, S6 a state (H, N), the LRU (N,)), in float64 precision
  # (complex128 for a complex carry).
  single = cell.initial_carry((), jnp.float64)
  for leaf, one in zip(jax.tree.leaves(carry), jax.tree.leaves(single), strict=True):
    assert leaf.shape == (2, 3, *one.shape) and leaf.dtype == one.dtype
    assert jnp.finfo(leaf.dtype).dtype == jnp.float64
    assert not np.any(np.asarray(leaf))
  if getattr(cell, "read", None) is None:  # y is read from the carry: a leaf of width H
    assert any(leaf.shape[-1] == H for leaf in jax.tree.leaves(carry))
  assert isinstance(carry, gj.LSTMState) == name.startswith("lstm")


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_runs_finite_and_near_the_exact_values(name):
  cell = make(name, H)
  params = random_params(cell, 0, I, dtype=jnp.bfloat16)
  xs = random_input(1, (6, 2, I), jnp.bfloat16)
  carry, ys = gj.scan(cell, params, xs)
  chex.assert_type(ys, jnp.bfloat16)
  chex.assert_tree_all_finite((carry, ys))
  # bfloat16 keeps 8 bits of mantissa: the run must stay near the exact (float64) one.
  expected = cell.initial_carry((2,))
  for t, x in enumerate(xs):
    expected, y = reference_step(name, cell, params, expected, x)
    np.testing.assert_allclose(np.asarray(ys[t], np.float64), y, atol=5e-2)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_equals_leading_batch_axes(name):
  cell = make(name, H)
  params = random_params(cell, 0, I)
  carry = random_carry(cell, 1, (2, 3))
  x = random_input(2, (2, 3, I))
  batched = cell.step(params, carry, x)
  step = jax.vmap(jax.vmap(cell.step, in_axes=(None, 0, 0)), in_axes=(None, 0, 0))
  chex.assert_trees_all_close(step(params, carry, x), batched, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_no_retrace_on_a_second_call(name):
  cell = make(name, H)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, carry, x):
    return cell.step(params, carry, x)

  for seed in range(3):
    params = random_params(cell, seed, I)
    step(params, random_carry(cell, seed, (4,)), random_input(seed, (4, I)))


# ---------------------------------------------------------------------------
# gate_fn and activation are really used
# ---------------------------------------------------------------------------


FACTORIES = {
  "gru_after": lambda **kw: gj.gru(H, reset="after", **kw),
  "gru_before": lambda **kw: gj.gru(H, reset="before", **kw),
  "lstm": lambda **kw: gj.lstm(H, **kw),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_gate_fn_and_activation_are_the_ones_given(name, x64):
  factory = FACTORIES[name]
  cell = factory(gate_fn=jax.nn.relu, activation=jax.nn.soft_sign)
  params = random_params(cell, 0, I, dtype=np.float64)
  carry = random_carry(cell, 1, (4,), np.float64)
  x = random_input(2, (4, I), np.float64)
  new_carry, y = cell.step(params, carry, x)
  expected_carry, _ = reference_step(name, cell, params, carry, x, gate=np_relu, act=np_soft_sign)
  assert_tree_close(new_carry, expected_carry, 1e-12)
  _, y_default = factory().step(params, carry, x)
  assert float(jnp.abs(y - y_default).max()) > 1e-2


def test_rnn_activation_is_the_one_given(x64):
  params = random_params(gj.rnn(H), 0, I, dtype=np.float64)
  x = random_input(1, (4, I), np.float64)
  h0 = jnp.zeros((4, H), jnp.float64)
  _, y_relu = gj.rnn(H, activation=jax.nn.relu).step(params, h0, x)
  _, y_tanh = gj.rnn(H).step(params, h0, x)
  assert float(y_relu.min()) >= 0.0 and float(y_tanh.min()) < 0.0


# ---------------------------------------------------------------------------
# GRU reset="before" against Dive into Deep Learning (d2l.ai, §10.2 "from scratch")
# ---------------------------------------------------------------------------


def d2l_gru(inputs, state, params):
  """d2l's ``gru`` function in NumPy, its own variable names and separate matrices."""
  W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h = params
  (H_,) = state
  outputs = []
  for X in inputs:
    Z = np_sigmoid((X @ W_xz) + (H_ @ W_hz) + b_z)
    R = np_sigmoid((X @ W_xr) + (H_ @ W_hr) + b_r)
    H_tilde = np.tanh((X @ W_xh) + ((R * H_) @ W_hh) + b_h)
    H_ = Z * H_ + (1 - Z) * H_tilde
    outputs.append(H_)
  return np.stack(outputs), (H_,)


def test_gru_before_matches_d2l(x64):
  rng = np.random.default_rng(0)
  T, B = 6, 4

  def three():
    return rng.normal(0, 0.5, (I, H)), rng.normal(0, 0.5, (H, H)), rng.normal(0, 0.5, (H,))

  W_xz, W_hz, b_z = three()
  W_xr, W_hr, b_r = three()
  W_xh, W_hh, b_h = three()
  inputs = rng.normal(size=(T, B, I))
  H0 = rng.normal(size=(B, H))
  expected_ys, (expected_h,) = d2l_gru(
    inputs, (H0,), (W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h)
  )

  # Only b_x + b_h enters the reset="before" equations: split it at random.
  split = rng.normal(size=(3 * H,))
  params = gj.GRUParams(
    w_x=jnp.asarray(np.concatenate([W_xr, W_xz, W_xh], axis=1)),
    w_h=jnp.asarray(np.concatenate([W_hr, W_hz, W_hh], axis=1)),
    b_x=jnp.asarray(np.concatenate([b_r, b_z, b_h]) - split),
    b_h=jnp.asarray(split),
  )
  cell = gj.gru(H, reset="before")
  h = jnp.asarray(H0)
  ys = []
  for x in inputs:
    h, y = cell.step(params, h, jnp.asarray(x))
    ys.append(y)
  np.testing.assert_allclose(np.stack(ys), expected_ys, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# GRU reset="after" and LSTM against Flax linen, weights mapped by hand
# ---------------------------------------------------------------------------


def linen_gru_variables(p):
  w_xr, w_xz, w_xn = blocks(p.w_x, 3)
  w_hr, w_hz, w_hn = blocks(p.w_h, 3)
  b_xr, b_xz, b_xn = blocks(p.b_x, 3)
  b_hr, b_hz, b_hn = blocks(p.b_h, 3)
  return {
    "params": {
      "ir": {"kernel": w_xr, "bias": b_xr + b_hr},
      "iz": {"kernel": w_xz, "bias": b_xz + b_hz},
      "in": {"kernel": w_xn, "bias": b_xn},
      "hr": {"kernel": w_hr},
      "hz": {"kernel": w_hz},
      "hn": {"kernel": w_hn, "bias": b_hn},
    }
  }


def linen_lstm_variables(p):
  w_x, w_h, b = blocks(p.w_x, 4), blocks(p.w_h, 4), blocks(p.b, 4)
  params = {}
  for k, g in enumerate("ifgo"):
    params["i" + g] = {"kernel": w_x[k]}
    params["h" + g] = {"kernel": w_h[k], "bias": b[k]}
  return {"params": params}


@pytest.mark.parametrize("linen_cell", [nn.GRUCell, nn.LSTMCell, nn.OptimizedLSTMCell])
def test_matches_flax_linen(linen_cell, x64):
  module = linen_cell(features=H, param_dtype=jnp.float64)
  is_gru = linen_cell is nn.GRUCell
  cell = gj.gru(H, reset="after") if is_gru else gj.lstm(H)
  params = random_params(cell, 0, I, dtype=np.float64)
  variables = (linen_gru_variables if is_gru else linen_lstm_variables)(params)
  xs = random_input(1, (5, 2, I), np.float64)
  carry = random_carry(cell, 2, (2,), np.float64)
  # Same tree as linen's own init: no parameter is missing or misnamed.
  own = module.init(
    jax.random.key(3), module.initialize_carry(jax.random.key(4), xs[0].shape), xs[0]
  )
  chex.assert_trees_all_equal_shapes_and_dtypes(own, variables)

  flax_carry = carry if is_gru else (carry.c, carry.h)  # linen's LSTM carry is (c, h)
  apply = jax.jit(module.apply)
  for x in xs:
    carry, y = cell.step(params, carry, x)
    flax_carry, flax_y = apply(variables, flax_carry, x)
    assert_tree_close(y, np.asarray(flax_y), 1e-12)
  expected = flax_carry if is_gru else gj.LSTMState(h=flax_carry[1], c=flax_carry[0])
  assert_tree_close(carry, as_numpy(expected), 1e-12)


# ---------------------------------------------------------------------------
# Biases written by init, chrono, initialisers
# ---------------------------------------------------------------------------

# One size for every test that calls init, so that its eager operations compile once.
INIT_I, INIT_H = 64, 16


@pytest.mark.parametrize("forget_bias", [1.0, -0.5, 3])
def test_forget_bias_is_written_into_the_forget_block(forget_bias):
  b = gj.lstm(INIT_H, forget_bias=forget_bias).init(jax.random.key(0), INIT_I).b
  b_i, b_f, b_g, b_o = blocks(np.asarray(b), 4)
  np.testing.assert_array_equal(b_f, np.full(INIT_H, forget_bias, np.float32))
  assert not np.any(b_i) and not np.any(b_g) and not np.any(b_o)


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("update_bias", [0.0, 2.0, -1.5])
def test_update_bias_is_written_into_the_z_block(reset, update_bias):
  p = gj.gru(INIT_H, reset=reset, update_bias=update_bias).init(jax.random.key(0), INIT_I)
  b_r, b_z, b_n = blocks(np.asarray(p.b_x + p.b_h), 3)
  np.testing.assert_array_equal(b_z, np.full(INIT_H, update_bias, np.float32))
  assert not np.any(b_r) and not np.any(b_n)


@pytest.mark.parametrize("gate_fn", [jax.nn.sigmoid, jax.nn.hard_sigmoid, jax.nn.relu])
@pytest.mark.parametrize(
  "cell_of",
  [
    lambda g: gj.lstm(H, forget_bias=5.0, gate_fn=g),
    lambda g: gj.lstm(H, forget_bias=gj.chrono(50), gate_fn=g),
    lambda g: gj.gru(H, update_bias=5.0, gate_fn=g, reset="after"),
    lambda g: gj.gru(H, update_bias=gj.chrono(50), gate_fn=g, reset="before"),
  ],
  ids=["lstm", "lstm_chrono", "gru_after", "gru_before_chrono"],
)
def test_zero_params_give_gate_fn_of_zero(cell_of, gate_fn):
  """The biases are initial values, never constants added inside the step."""
  cell = cell_of(gate_fn)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  carry = random_carry(cell, 1, (3,))
  x = random_input(2, (3, I))
  _, _, gates = cell.recur(zeros, carry, cell.project(zeros, x))
  keep, _ = cell.keep_write(gates)
  np.testing.assert_array_equal(keep, np.full((3, H), gate_fn(jnp.float32(0.0))))


def pooled_init(cell, keys=16):
  """``init`` under several keys, its leaves stacked on a new leading axis: units to count."""
  draws = [cell.init(jax.random.key(k), INIT_I) for k in range(keys)]
  return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *draws)


def test_chrono_lstm_bias():
  T = 50
  b = pooled_init(gj.lstm(INIT_H, forget_bias=gj.chrono(T))).b  # 16 draws of 4 blocks
  b_i, b_f, b_g, b_o = (block.ravel() for block in blocks(b, 4))
  assert b_f.min() >= 0.0 and b_f.max() <= np.log(T - 1) + 1e-6
  np.testing.assert_array_equal(b_i, -b_f)
  assert not np.any(b_g) and not np.any(b_o)
  # exp(b_f) ~ U(1, T - 1): mean T / 2, standard error (T - 2) / sqrt(12 * 256) ~ 0.87.
  assert abs(np.exp(b_f).mean() - T / 2) < 4.0
  assert np.exp(b_f).min() < 5 and np.exp(b_f).max() > T - 6
  assert len(np.unique(b_f)) == b_f.size  # a fresh draw per unit and per key


def test_chrono_gru_bias():
  T = 20
  p = pooled_init(gj.gru(INIT_H, update_bias=gj.chrono(T)))
  b_r, b_z, b_n = (block.ravel() for block in blocks(p.b_x + p.b_h, 3))
  assert b_z.min() >= 0.0 and b_z.max() <= np.log(T - 1) + 1e-6
  assert abs(np.exp(b_z).mean() - T / 2) < 2.0
  assert not np.any(b_r) and not np.any(b_n)


@pytest.mark.parametrize("name", [*CLASSIC, "mgu"])
def test_initialisers(name):
  input_size, hidden = INIT_I, INIT_H
  cell = make(name, hidden)
  params = cell.init(jax.random.key(0), input_size)
  gates = params.w_h.shape[1] // hidden
  chex.assert_shape(params.w_x, (input_size, gates * hidden))
  chex.assert_shape(params.w_h, (hidden, gates * hidden))
  recurrent = blocks(np.asarray(params.w_h, np.float64), gates)
  for block in recurrent:  # each gate's recurrent block is orthogonal
    np.testing.assert_allclose(block @ block.T, np.eye(hidden), atol=1e-5)
  for a, b in itertools.pairwise(recurrent):  # drawn with separate keys
    assert not np.allclose(a, b)
  # LeCun normal: variance 1 / input_size (standard error of the std here ~ 0.6%).
  std = float(np.asarray(params.w_x).std())
  assert abs(std * np.sqrt(input_size) - 1.0) < 0.05
  assert abs(float(np.asarray(params.w_x).mean())) < 3 / np.sqrt(params.w_x.size * input_size)
  # Same key, same parameters; another key, others.
  chex.assert_trees_all_equal(params, cell.init(jax.random.key(0), input_size))
  assert not np.allclose(params.w_x, cell.init(jax.random.key(1), input_size).w_x)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.bfloat16])
@pytest.mark.parametrize("name", [n for n in NAMES if n not in registry.USER])
def test_init_dtype(name, dtype, x64):
  cell = make(name, INIT_H)
  params = cell.init(jax.random.key(0), INIT_I, dtype=dtype)
  for leaf in jax.tree.leaves(params):
    chex.assert_type(leaf, dtype)
  if dtype == jnp.bfloat16:  # the float32 draw, rounded
    chex.assert_trees_all_equal(
      params, jax.tree.map(lambda a: a.astype(dtype), cell.init(jax.random.key(0), INIT_I))
    )
  else:  # drawn in float64: the recurrent weight blocks orthogonal to float64 precision
    square = [
      a
      for field, a in params._asdict().items()
      if field.startswith("w_")
      and a is not None
      and a.ndim == 2
      and a.shape[0] == INIT_H
      and a.shape[1] % INIT_H == 0
    ]
    for matrix in square:
      for block in blocks(np.asarray(matrix), matrix.shape[1] // INIT_H):
        np.testing.assert_allclose(block @ block.T, np.eye(INIT_H), atol=1e-12)
