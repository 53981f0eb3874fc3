"""gatejax.analysis at the edges of its inputs (issue 20): empty batches, no steps, and a carry
with an integer leaf, which has no derivative and is refused by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from registry import make, random_params
from user_cells import Counting

H, I, T = 3, 2, 5


def loss(ys, carry):
  return jnp.sum(ys**2)


def test_an_empty_batch_gives_empty_jacobian_norms():
  cell = make("lstm", H)
  params = random_params(cell, 0, I)
  for ord_ in (2, "fro"):
    jn = gj.analysis.jacobian_norms(cell, params, jnp.zeros((T, 0, I)), ord=ord_)
    assert jn.shape == (T, 0)


def test_no_steps_give_empty_carry_gradients():
  cell = make("lstm", H)
  params = random_params(cell, 0, I)
  adj = gj.analysis.carry_gradients(cell, params, jnp.zeros((0, 2, I)), loss)
  assert adj.h.shape == adj.c.shape == (0, 2, H)
  assert gj.analysis.contribution_norms(cell, params, jnp.zeros((0, 2, I)), loss).shape == (0,)


@pytest.mark.parametrize(
  "fn",
  [
    lambda *a: gj.analysis.contribution_norms(*a, loss),
    lambda *a: gj.analysis.step_contributions(*a, loss),
    lambda *a: gj.analysis.carry_gradients(*a, loss),
    gj.analysis.jacobian_norms,
  ],
)
def test_an_integer_carry_leaf_is_refused_by_name(fn):
  cell = Counting(H)
  params = cell.init(jax.random.key(0), I)
  with pytest.raises(TypeError, match=r"carry leaf count .*int32"):
    fn(cell, params, jnp.zeros((T, 2, I)))


@pytest.mark.parametrize(
  "fn",
  [
    lambda *a, **k: gj.analysis.contribution_norms(*a, loss, **k),
    lambda *a, **k: gj.analysis.step_contributions(*a, loss, **k),
    lambda *a, **k: gj.analysis.carry_gradients(*a, loss, **k),
    gj.analysis.jacobian_norms,
    gj.analysis.gate_statistics,
  ],
)
def test_an_option_the_cell_cannot_take_is_the_same_error_as_in_scan(fn):
  """impl="associative" on a cell not affine in its carry is refused everywhere, as gj.scan
  refuses it, rather than silently run by the loop (issue 20, item 4)."""
  cell = make("gru_after", H)
  params = random_params(cell, 0, I)
  xs = jnp.ones((T, 2, I))
  options = gj.ScanOptions(impl="associative")
  with pytest.raises(ValueError) as expected:
    gj.scan(cell, params, xs, options=options)
  with pytest.raises(ValueError) as got:
    fn(cell, params, xs, options=options)
  assert str(got.value) == str(expected.value)


def test_nan_gates_give_nan_statistics():
  """A NaN is neither shut nor open: every statistic of a gate NaN at a valid step is NaN,
  while NaN past the lengths is ignored (issue 20, item 5)."""
  cell = make("gru_after", H)
  params = random_params(cell, 0, I)
  xs = jax.random.normal(jax.random.key(1), (T, 3, I))
  lengths = jnp.array([T, 2, 3])
  past = jnp.arange(T)[:, None] >= lengths[None, :]
  clean = gj.analysis.gate_statistics(cell, params, xs, lengths=lengths)
  padded = gj.analysis.gate_statistics(
    cell, params, jnp.where(past[..., None], jnp.nan, xs), lengths=lengths
  )
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), padded, clean)
  broken = gj.analysis.gate_statistics(cell, params, xs.at[1, 0].set(jnp.nan), lengths=lengths)
  for field in ("near_zero", "near_one", "dead", "dead_units", "mean"):
    assert all(np.isnan(v) for v in getattr(broken, field).values()), field
    assert all(np.isfinite(v) for v in getattr(clean, field).values()), field


def test_gate_statistics_mask_each_gate_in_its_own_shape():
  """mLSTM's gates are per head ((T, B, heads), not (T, B, H)): the statistics equal NumPy's
  over the valid steps."""
  cell = gj.mlstm(8, num_heads=2)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(2), (T, 3, I))
  lengths = jnp.array([T, 1, 3])
  stats = gj.analysis.gate_statistics(cell, params, xs, lengths=lengths, eps=0.4)
  _, _, gates = gj.scan_with_gates(cell, params, xs, lengths=lengths)
  valid = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
  for name, value in gj.protocol.gate_values(cell, gates).items():
    a = np.asarray(value)[valid]  # (valid steps, heads)
    np.testing.assert_allclose(stats.mean[name], a.mean(), rtol=1e-6)
    np.testing.assert_allclose(stats.near_zero[name], (a < 0.4).mean(), rtol=1e-6)
    np.testing.assert_allclose(stats.near_one[name], (a > 0.6).mean(), rtol=1e-6)
