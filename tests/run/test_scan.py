"""The sequence runner: gj.scan against a Python loop over cell.step, lengths, reverse, stacks.

The oracle for every case is a plain Python loop over ``cell.step`` (SPEC §3), run on each
sequence alone and unpadded when lengths are involved.
"""

import functools

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import gatejax as gj
from registry import (
  CHUNKWISE,
  LINEAR,
  NAMES,
  PATHS,
  USER,
  draw_like,
  make,
  normal,
  random_params,
)

H, I = 4, 3
TOL = 1e-6  # float32: scan and the loop do the same arithmetic, in another order at most

# One cell object per variant: scan's compiled code is cached per cell, so tests that share
# a cell (and shapes) compile once.
CELLS = {name: make(name, H) for name in NAMES}


@functools.cache
def params_of(name):
  """The cell's random params, drawn once, when a test first asks (not at collection)."""
  return random_params(CELLS[name], 0, I)


# Step compiled once per cell, for the loops below.
STEPS = {name: jax.jit(cell.step) for name, cell in CELLS.items()}


def random_carry(cell, seed, batch_shape):
  rng = np.random.default_rng(seed)
  template = jax.eval_shape(lambda: cell.initial_carry(batch_shape))
  return jax.tree.map(lambda s: draw_like(rng, s), template)  # complex leaves: both parts


def in_precision(a, dtype):
  """``a`` in ``dtype``'s precision, complex where ``a`` is (the LRU's carry)."""
  if jnp.iscomplexobj(a):
    return a.astype(jnp.complex128 if jnp.dtype(dtype) == jnp.float64 else jnp.complex64)
  return a.astype(dtype)


def random_xs(seed, shape):
  return normal(np.random.default_rng(seed), shape)


def loop(step, params, xs, carry, reverse=False):
  """The oracle: ``(carry, ys)`` of a Python loop over ``step`` on one unpadded sequence."""
  order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
  ys = [None] * xs.shape[0]
  for t in order:
    carry, ys[t] = step(params, carry, xs[t])
  return carry, ys


def take(tree, index):
  return jax.tree.map(lambda a: a[index], tree)


def assert_close(actual, expected, tol=TOL):
  chex.assert_trees_all_equal_structs(actual, expected)
  chex.assert_trees_all_close(actual, expected, atol=tol, rtol=tol)


def padded_oracle(name, xs, carry, lengths, reverse):
  """Each sequence of the batch run alone on its first ``lengths[b]`` steps, zeros after."""
  step, params = STEPS[name], params_of(name)
  T, B = xs.shape[:2]
  carries, ys = [], np.zeros((T, B, H), np.float32)
  for b in range(B):
    c, y = loop(step, params, xs[: lengths[b], b], take(carry, b), reverse)
    carries.append(c)
    if lengths[b]:
      ys[: lengths[b], b] = np.stack(y)
  return jax.tree.map(lambda *a: jnp.stack(a), *carries), ys


# ---------------------------------------------------------------------------
# scan = a loop over step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("batch_shape", "reverse"), [((2,), False), ((), True)])
@pytest.mark.parametrize("name", NAMES)
def test_scan_equals_a_loop_over_step(name, batch_shape, reverse):
  cell, params = CELLS[name], params_of(name)
  xs = random_xs(1, (5, *batch_shape, I))
  carry = random_carry(cell, 2, batch_shape)
  final, ys = gj.scan(cell, params, xs, carry=carry, reverse=reverse)
  chex.assert_shape(ys, (5, *batch_shape, H))
  expected_final, expected_ys = loop(STEPS[name], params, xs, carry, reverse)
  assert_close(ys, jnp.stack(expected_ys))
  assert_close(final, expected_final)


@pytest.mark.parametrize("name", NAMES)
def test_default_carry_is_zeros_and_a_given_carry_is_honoured(name):
  cell, params = CELLS[name], params_of(name)
  xs = random_xs(1, (5, 2, I))
  zeros = cell.initial_carry((2,))
  chex.assert_trees_all_equal(gj.scan(cell, params, xs), gj.scan(cell, params, xs, carry=zeros))
  carry = random_carry(cell, 2, (2,))
  _, ys = gj.scan(cell, params, xs, carry=carry)
  _, ys_zero = gj.scan(cell, params, xs)
  assert float(jnp.abs(ys[0] - ys_zero[0]).max()) > 1e-3
  assert_close(ys, jnp.stack(loop(STEPS[name], params, xs, carry)[1]))


def test_unroll_gives_the_same_values():
  cell, params = CELLS["lstm"], params_of("lstm")
  xs = random_xs(1, (3, 2, I))
  lengths = jnp.array([3, 1])
  expected = gj.scan(cell, params, xs, lengths=lengths)
  for unroll in (2, True):  # 2 does not divide T = 3; True unrolls fully
    assert_close(gj.scan(cell, params, xs, lengths=lengths, unroll=unroll), expected)


# ---------------------------------------------------------------------------
# lengths and reverse
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_padded_batch_equals_each_sequence_alone(name, reverse):
  cell = CELLS[name]
  xs = random_xs(1, (5, 3, I))
  carry = random_carry(cell, 2, (3,))
  lengths = np.array([5, 0, 2])
  final, ys = gj.scan(
    cell, params_of(name), xs, carry=carry, lengths=jnp.asarray(lengths), reverse=reverse
  )
  expected_final, expected_ys = padded_oracle(name, xs, carry, lengths, reverse)
  assert_close(ys, jnp.asarray(expected_ys))
  assert_close(final, expected_final)
  # Padded steps write zeros; a length of 0 leaves the carry as it was given.
  assert not np.any(np.asarray(ys)[2:, 2])
  chex.assert_trees_all_equal(take(final, 1), take(carry, 1))


@settings(max_examples=8, deadline=None)  # each new (cell, T) compiles: keep it few
@given(
  name=st.sampled_from(NAMES),
  time=st.integers(0, 4),
  data=st.data(),
  reverse=st.booleans(),
)
def test_padded_batch_equals_each_sequence_alone_property(name, time, data, reverse):
  lengths = np.array(data.draw(st.lists(st.integers(0, time), min_size=3, max_size=3)))
  cell = CELLS[name]
  xs = random_xs(time, (time, 3, I))
  carry = random_carry(cell, 2, (3,))
  final, ys = gj.scan(
    cell, params_of(name), xs, carry=carry, lengths=jnp.asarray(lengths), reverse=reverse
  )
  expected_final, expected_ys = padded_oracle(name, xs, carry, lengths, reverse)
  assert_close(ys, jnp.asarray(expected_ys))
  assert_close(final, expected_final)


def test_lengths_may_be_traced():
  """Under jit the values of lengths are unknown at trace time: no range check, same result."""
  cell, params = CELLS["lstm"], params_of("lstm")
  xs = random_xs(1, (5, 3, I))
  lengths = jnp.array([5, 1, 3])
  run = jax.jit(lambda xs, lengths: gj.scan(cell, params, xs, lengths=lengths, reverse=True))
  assert_close(run(xs, lengths), gj.scan(cell, params, xs, lengths=lengths, reverse=True))


@pytest.mark.parametrize("name", ["gru_before", "lstm"])  # an array carry and a tuple carry
def test_empty_sequence_returns_the_initial_carry(name):
  cell, params = CELLS[name], params_of(name)
  xs = jnp.zeros((0, 2, I))
  carry, ys = gj.scan(cell, params, xs)
  chex.assert_shape(ys, (0, 2, H))
  chex.assert_trees_all_equal(carry, cell.initial_carry((2,)))
  given_carry = random_carry(cell, 2, (2,))
  carry, ys = gj.scan(cell, params, xs, carry=given_carry, lengths=jnp.zeros(2, jnp.int32))
  chex.assert_shape(ys, (0, 2, H))
  chex.assert_trees_all_equal(carry, given_carry)


def test_gradient_does_not_flow_through_padded_steps():
  """The carry after the last valid step does not depend on the padding inputs."""
  cell, params = CELLS["gru_after"], params_of("gru_after")
  xs = random_xs(1, (5, 2, I))
  lengths = jnp.array([5, 2])

  def final_h(xs):
    return gj.scan(cell, params, xs, lengths=lengths)[0].sum()

  grad = jax.grad(final_h)(xs)
  assert not np.any(np.asarray(grad)[2:, 1])
  assert np.all(np.abs(np.asarray(grad)[:2, 1]).sum(-1) > 0)


# ---------------------------------------------------------------------------
# scan_with_gates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_scan_with_gates_matches_recomputation(name):
  cell, params = CELLS[name], params_of(name)
  xs = random_xs(1, (5, 2, I))
  carry0 = random_carry(cell, 2, (2,))
  final, ys, gates = gj.scan_with_gates(cell, params, xs, carry=carry0)
  assert_close((final, ys), gj.scan(cell, params, xs, carry=carry0))
  if not hasattr(cell, "recur") or not cell.gate_names:  # no gates to report
    assert gates == ()
    return
  carry, expected = carry0, []
  for x in xs:
    carry, _, g = cell.recur(params, carry, cell.project(params, x))
    expected.append(g)
  assert type(gates) is type(expected[0])
  for field in gates._fields:  # time first, then the step's own gate shape (per head: mLSTM)
    chex.assert_shape(getattr(gates, field), (5, *getattr(expected[0], field).shape))
  assert_close(gates, jax.tree.map(lambda *g: jnp.stack(g), *expected))


def test_scan_with_gates_at_padded_steps_uses_the_held_carry():
  """A padded step reads the held carry and a zero input: the padding never enters."""
  cell, params = CELLS["lstm"], params_of("lstm")
  xs = random_xs(1, (5, 2, I))
  lengths = jnp.array([5, 2])
  final, _, gates = gj.scan_with_gates(cell, params, xs, lengths=lengths)
  _, _, g4 = cell.recur(params, take(final, 1), cell.project(params, jnp.zeros_like(xs[4, 1])))
  assert_close(take(gates, (4, 1)), g4)


# ---------------------------------------------------------------------------
# No retrace
# ---------------------------------------------------------------------------


def counted(cell):
  """``cell`` whose ``recur`` counts its traces: one trace per compilation of the scan."""
  chex.clear_trace_counter()
  return cell._replace(recur=chex.assert_max_traces(cell.recur, n=1))


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("name", ["gru_before", "lstm"])
def test_no_retrace_on_a_second_call(name, with_lengths):
  cell = counted(make(name, H))
  for seed in range(3):  # other values, same shapes and dtypes
    lengths = jnp.array([5, seed]) if with_lengths else None
    params = random_params(cell, seed, I)
    carry = random_carry(cell, seed, (2,))
    gj.scan(cell, params, random_xs(seed, (5, 2, I)), carry=carry, lengths=lengths)


def test_no_retrace_of_a_stack():
  # The first call compiles 2 scans, forward and backward.
  chex.clear_trace_counter()
  cell = make("lstm", H)
  cell = cell._replace(recur=chex.assert_max_traces(cell.recur, n=2))
  net = gj.stack(cell, bidirectional=True)
  for seed in range(2):
    params = random_stack_params(net, seed)
    gj.scan_stack(net, params, random_xs(seed, (5, 2, I)), lengths=jnp.array([5, seed + 1]))


def test_a_retrace_is_detected():
  """The counter above can fail: a new shape compiles again."""
  cell = counted(make("rnn_tanh", H))
  params = params_of("rnn_tanh")
  gj.scan(cell, params, random_xs(0, (5, 2, I)))
  with pytest.raises(AssertionError, match="traced > 1"):
    gj.scan(cell, params, random_xs(0, (6, 2, I)))


# ---------------------------------------------------------------------------
# vmap
# ---------------------------------------------------------------------------


def test_vmap_of_scan_equals_batch_axes():
  cell, params = CELLS["gru_before"], params_of("gru_before")
  xs = random_xs(1, (5, 3, I))
  lengths = jnp.array([5, 0, 2])
  run = jax.vmap(
    lambda x, n: gj.scan(cell, params, x, lengths=n, reverse=True), in_axes=(1, 0), out_axes=(0, 1)
  )
  assert_close(run(xs, lengths), gj.scan(cell, params, xs, lengths=lengths, reverse=True))


# ---------------------------------------------------------------------------
# Stacks
# ---------------------------------------------------------------------------


def random_stack_params(net, seed):
  """``net.init``'s structure, every leaf drawn by NumPy (no compilation, no zero biases)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), I))
  return jax.tree.map(lambda s: normal(rng, s.shape, scale=0.5), shapes)


def manual_stack(cells, params, xs, carries, lengths, bidirectional, reverse=False):
  """The stack composed by hand from gj.scan calls."""
  finals = []
  for cell, p, c in zip(cells, params, carries, strict=True):
    if bidirectional:
      c_f, y_f = gj.scan(cell, p.forward, xs, carry=c.forward, lengths=lengths)
      c_b, y_b = gj.scan(cell, p.backward, xs, carry=c.backward, lengths=lengths, reverse=True)
      finals.append(gj.Bidirectional(c_f, c_b))
      xs = jnp.concatenate([y_f, y_b], axis=-1)
    else:
      c, xs = gj.scan(cell, p, xs, carry=c, lengths=lengths, reverse=reverse)
      finals.append(c)
  return tuple(finals), xs


@pytest.mark.parametrize(
  ("layers", "bidirectional", "reverse"),
  [
    (("lstm", "lstm"), False, False),
    (("gru_before", "rnn_relu"), False, True),
    (("rnn_tanh", "lstm"), True, False),
  ],
)
@pytest.mark.parametrize("given_carry", [False, True])
def test_stack_equals_manual_composition(layers, bidirectional, reverse, given_carry):
  cells = [CELLS[name] for name in layers]
  net = gj.stack(cells, bidirectional=bidirectional)
  params = random_stack_params(net, 0)
  xs = random_xs(1, (5, 3, I))
  lengths = jnp.array([5, 0, 3])
  d = 2 if bidirectional else 1
  # Layer k + 1 reads d * H features.
  for k, p in enumerate(params):
    for side in (p.forward, p.backward) if bidirectional else (p,):
      chex.assert_shape(side.w_x, (I if k == 0 else d * H, None))
  carries = net.initial_carry((3,))
  if given_carry:
    carries = tuple(
      jax.tree.map(lambda a, k=k: a + 0.5 * (k + 1), c) for k, c in enumerate(carries)
    )
  out = gj.scan_stack(
    net, params, xs, carry=carries if given_carry else None, lengths=lengths, reverse=reverse
  )
  expected = manual_stack(cells, params, xs, carries, lengths, bidirectional, reverse)
  chex.assert_shape(out[1], (5, 3, net.output_size))
  assert net.output_size == d * H
  assert_close(out, expected)
  # With a padded batch the sequence of length 0 keeps its initial carries.
  chex.assert_trees_all_equal(take(out[0], 1), take(carries, 1))


def test_bidirectional_halves():
  """Forward features at t read x_0..x_t, backward ones x_t..x_{L-1}: checked by perturbation."""
  net = gj.stack(CELLS["lstm"], bidirectional=True)
  params = random_stack_params(net, 0)
  xs = random_xs(1, (5, 2, I))
  lengths = jnp.array([4, 5])
  _, ys = gj.scan_stack(net, params, xs, lengths=lengths)
  _, ys2 = gj.scan_stack(net, params, xs.at[2].add(1.0), lengths=lengths)
  changed = np.abs(np.asarray(ys2 - ys))[:, 0] > 1e-6
  forward, backward = changed[:, :H].any(-1), changed[:, H:].any(-1)
  np.testing.assert_array_equal(forward, [False, False, True, True, False])
  np.testing.assert_array_equal(backward, [True, True, True, False, False])


@pytest.mark.parametrize("name", PATHS)
def test_stack_of_every_cell(name):
  """Two bidirectional layers of any cell (a user's included) equal their manual composition."""
  cell = CELLS[name]
  net = gj.stack(cell, num_layers=2, bidirectional=True)
  params = random_stack_params(net, 1)
  xs = random_xs(2, (4, 3, I))
  lengths = jnp.array([4, 0, 2])
  out = gj.scan_stack(net, params, xs, lengths=lengths)
  expected = manual_stack([cell, cell], params, xs, net.initial_carry((3,)), lengths, True)
  chex.assert_shape(out[1], (4, 3, 2 * H))
  assert_close(out, expected)


# ---------------------------------------------------------------------------
# Gradients against autodiff of a plain lax.scan written here
# ---------------------------------------------------------------------------


def plain_scan(cell, params, xs, carry, lengths, reverse):
  """``lax.scan`` over ``cell.step``, masked by hand: the reference for every fast path."""

  def body(c, inputs):
    t, x = inputs
    new, y = cell.step(params, c, x)
    valid = t < lengths
    new = jax.tree.map(
      lambda n, o: jnp.where(valid.reshape(valid.shape + (1,) * (n.ndim - 1)), n, o), new, c
    )
    return new, jnp.where(valid[:, None], y, 0)

  steps = jnp.arange(xs.shape[0], dtype=lengths.dtype)
  return jax.lax.scan(body, carry, (steps, xs), reverse=reverse)


def loss_of(run):
  def loss(params, xs, carry):
    final, ys = run(params, xs, carry)
    weights = jnp.linspace(0.5, 1.5, ys.shape[0], dtype=ys.dtype)[:, None, None]
    # |a|², a² for a real leaf: a complex carry (the LRU's) gives a real loss too
    squares = (jnp.sum(jnp.real(a * jnp.conj(a))) for a in jax.tree.leaves(final))
    return jnp.sum(weights * jnp.sin(ys)) + sum(squares)

  return jax.jit(jax.value_and_grad(loss, (0, 1, 2)))


# Direction handling is shared by every cell: each runs one direction, alternating, and the
# cells written outside the library and those evaluated all at once run both.
GRADIENT_CASES = [(n, k % 2 == 1) for k, n in enumerate(PATHS)] + [
  (n, k % 2 == 0) for k, n in enumerate(PATHS) if n in USER or n in LINEAR
]


@pytest.mark.parametrize(("name", "reverse"), GRADIENT_CASES)
def test_gradients_equal_autodiff_of_a_plain_lax_scan(name, reverse, x64):
  """gj.scan's default path (fused VJP, associative scan, or autodiff of step) in float64."""
  cell = make(name, H)
  params = random_params(cell, 3, I, dtype=np.float64)
  xs = normal(np.random.default_rng(4), (6, 3, I), np.float64)
  carry = jax.tree.map(lambda a: in_precision(a, jnp.float64) + 0.3, random_carry(cell, 5, (3,)))
  lengths = jnp.array([6, 0, 4], jnp.int32)
  fast = loss_of(lambda p, x, c: gj.scan(cell, p, x, carry=c, lengths=lengths, reverse=reverse))
  plain = loss_of(lambda p, x, c: plain_scan(cell, p, x, c, lengths, reverse))
  value, grads = fast(params, xs, carry)
  value_ref, grads_ref = plain(params, xs, carry)
  chex.assert_trees_all_close(value, value_ref, rtol=1e-12, atol=1e-12)
  chex.assert_trees_all_close(grads, grads_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", LINEAR)
def test_associative_scan_equals_the_sequential_loop(name, reverse, dtype, tol):
  """minGRU and minLSTM run all steps at once; the loop over their steps is the reference."""
  with jax.enable_x64(dtype == "float64"):
    cell = make(name, H)
    params = random_params(cell, 6, I, dtype=dtype)
    xs = normal(np.random.default_rng(7), (9, 3, I), dtype)
    carry = jax.tree.map(lambda a: in_precision(a, dtype), random_carry(cell, 8, (3,)))
    lengths = jnp.array([9, 2, 0], jnp.int32)
    run = lambda impl: loss_of(
      lambda p, x, c: gj.scan(cell, p, x, carry=c, lengths=lengths, reverse=reverse, impl=impl)
    )(params, xs, carry)
    parallel, sequential = run("associative"), run("autodiff")
    # each leaf to tol of its own scale: another order of the same float32 sums (S6's
    # gradients reach ~30, and an entry of 0.1 among them carries their rounding)
    for got, want in zip(jax.tree.leaves(parallel), jax.tree.leaves(sequential), strict=True):
      scale = max(1.0, float(jnp.max(jnp.abs(want))))
      chex.assert_trees_all_close(got, want, rtol=tol, atol=tol * scale)
    final, ys = gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
    final_ref, ys_ref = padded_oracle_dtype(cell, params, xs, carry, np.asarray(lengths), reverse)
    assert_close((final, ys), (final_ref, ys_ref), tol)


@pytest.mark.parametrize(
  ("reverse", "dtype", "tol"), [(False, "float64", 1e-12), (True, "float32", 1e-5)]
)
@pytest.mark.parametrize("name", CHUNKWISE)
def test_the_chunkwise_form_equals_the_sequential_loop(name, reverse, dtype, tol):
  """impl="chunkwise" (chunks of 4 over 10 steps: a ragged last chunk) with lengths: values
  and gradients as the step loop's, and the padding held as the loop holds it."""
  with jax.enable_x64(dtype == "float64"):
    cell = make(name, H)
    params = random_params(cell, 6, I, dtype=dtype)
    xs = normal(np.random.default_rng(7), (10, 3, I), dtype)
    carry = jax.tree.map(lambda a: (0.3 * a).astype(dtype), random_carry(cell, 8, (3,)))
    lengths = jnp.array([10, 3, 0], jnp.int32)
    options = {
      "chunkwise": gj.ScanOptions(impl="chunkwise", chunk_size=4),
      "autodiff": gj.ScanOptions(impl="autodiff"),
    }
    run = lambda impl: loss_of(
      lambda p, x, c: gj.scan(
        cell, p, x, carry=c, lengths=lengths, reverse=reverse, options=options[impl]
      )
    )(params, xs, carry)
    chex.assert_trees_all_close(run("chunkwise"), run("autodiff"), rtol=tol, atol=tol)


def padded_oracle_dtype(cell, params, xs, carry, lengths, reverse):
  """:func:`padded_oracle` for any cell, parameters and dtype."""
  step = jax.jit(cell.step)
  carries, ys = [], np.zeros((*xs.shape[:2], H), xs.dtype)
  for b in range(xs.shape[1]):
    c, y = loop(step, params, xs[: lengths[b], b], take(carry, b), reverse)
    carries.append(c)
    if lengths[b]:
      ys[: lengths[b], b] = np.stack(y)
  return jax.tree.map(lambda *a: jnp.stack(a), *carries), jnp.asarray(ys)


def test_a_cell_linear_in_its_carry_runs_with_depth_log_t():
  """The associative path really is taken: no sequential loop over time in the program;
  "auto" takes it off the CPU only (on a CPU the loop is faster)."""
  cell, params = CELLS["min_gru"], params_of("min_gru")
  xs = random_xs(1, (64, 2, I))
  lower = lambda impl: jax.jit(lambda p, x: gj.scan(cell, p, x, impl=impl)).lower(params, xs)
  assert "while" not in lower("associative").as_text()
  assert "while" in lower("fused").as_text()
  assert ("while" in lower("auto").as_text()) == (jax.default_backend() == "cpu")
