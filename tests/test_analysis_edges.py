"""gatejax.analysis at the edges of its inputs (issue 20): empty batches, no steps, and a carry
with an integer leaf, which has no derivative and is refused by name."""

import jax
import jax.numpy as jnp
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
