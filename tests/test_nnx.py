"""gatejax.nnx: the NNX layer gives the pure API's outputs bit for bit, trains, and splits/merges."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import gatejax as gj
from gatejax.nnx import Recurrent, check_params
from registry import PATHS, make

T, B, I, H = 7, 3, 4, 5


def _inputs(seed=0):
  xs = jax.random.normal(jax.random.key(seed), (T, B, I))
  lengths = jnp.array([T, 4, 0])
  return xs, lengths


def _assert_trees_equal(a, b):
  chex.assert_trees_all_equal_structs(a, b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cell_layer_equals_pure_scan(name, reverse):
  cell = make(name, H)
  params = cell.init(jax.random.key(1), I)
  xs, lengths = _inputs()
  carry0 = jax.tree.map(lambda c: c + 0.5, cell.initial_carry((B,)))
  layer = Recurrent.from_params(cell, params)
  got = layer(xs, carry=carry0, lengths=lengths, reverse=reverse)
  want = gj.scan(cell, params, xs, carry=carry0, lengths=lengths, reverse=reverse)
  _assert_trees_equal(got, want)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_layer_equals_pure_scan_stack(bidirectional):
  net = gj.stack([gj.gru(H), gj.lstm(H + 1)], bidirectional=bidirectional)
  params = net.init(jax.random.key(2), I)
  xs, lengths = _inputs(1)
  layer = Recurrent.from_params(net, params)
  _assert_trees_equal(layer(xs, lengths=lengths), gj.scan_stack(net, params, xs, lengths=lengths))


def test_num_layers_and_bidirectional_build_a_stack():
  layer = Recurrent(gj.rnn(H), I, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
  assert isinstance(layer.net, gj.Stack) and layer.net.bidirectional
  assert [c.kind for c in layer.net.layers] == ["rnn", "rnn"]
  xs, _ = _inputs()
  _assert_trees_equal(layer(xs), gj.scan_stack(layer.net, layer.to_params(), xs))


def test_jitted_layer_equals_jitted_pure_api():
  cell = gj.lstm(H)
  params = cell.init(jax.random.key(3), I)
  xs, lengths = _inputs()
  layer = Recurrent.from_params(cell, params)
  got = nnx.jit(lambda m, x, n: m(x, lengths=n))(layer, xs, lengths)
  want = jax.jit(lambda p, x, n: gj.scan(cell, p, x, lengths=n))(params, xs, lengths)
  _assert_trees_equal(got, want)


def test_batch_major_layout_is_a_transpose():
  cell = gj.gru(H)
  params = cell.init(jax.random.key(4), I)
  xs, lengths = _inputs()
  batch_major = Recurrent.from_params(cell, params, time_major=False)
  carry, ys = batch_major(jnp.swapaxes(xs, 0, 1), lengths=lengths)
  want_carry, want_ys = gj.scan(cell, params, xs, lengths=lengths)
  _assert_trees_equal((carry, jnp.swapaxes(ys, 0, 1)), (want_carry, want_ys))


def test_fresh_layer_has_the_pure_layout_and_round_trips():
  net = gj.stack(gj.lstm(H), num_layers=2)
  layer = Recurrent(net, I, rngs=nnx.Rngs(params=7))
  params = layer.to_params()
  chex.assert_trees_all_equal_shapes_and_dtypes(
    params, jax.eval_shape(lambda: net.init(jax.random.key(0), I))
  )
  again = Recurrent.from_params(net, params)
  _assert_trees_equal(again.to_params(), params)
  # Param leaves are what nnx.state sees: nnx.Optimizer trains exactly these arrays.
  assert len(jax.tree.leaves(nnx.state(layer, nnx.Param))) == len(jax.tree.leaves(params))


def test_load_params_overwrites_in_place():
  cell = gj.gru(H)
  layer = Recurrent(cell, I, rngs=nnx.Rngs(0))
  new = cell.init(jax.random.key(9), I)
  layer.load_params(new)
  _assert_trees_equal(layer.to_params(), new)
  with pytest.raises(ValueError, match=r"params\.w_x has shape \(4, 18\)"):
    layer.load_params(gj.gru(H + 1).init(jax.random.key(9), I))


def test_split_merge_round_trip():
  net = gj.stack(gj.gru(H), num_layers=2, bidirectional=True)
  layer = Recurrent(net, I, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(layer)
  merged = nnx.merge(graphdef, state)
  assert merged.net == net
  _assert_trees_equal(merged.to_params(), layer.to_params())
  xs, lengths = _inputs()
  _assert_trees_equal(merged(xs, lengths=lengths), layer(xs, lengths=lengths))
  # a pure-dict state (what a checkpoint stores) restores into a fresh abstract module
  pure = nnx.to_pure_dict(state)
  assert set(pure["params"][0]["forward"]) == {"w_x", "w_h", "b_x", "b_h"}
  abstract_graphdef, abstract_state = nnx.split(
    nnx.eval_shape(lambda: Recurrent(net, I, rngs=nnx.Rngs(1)))
  )
  nnx.replace_by_pure_dict(abstract_state, pure)
  _assert_trees_equal(nnx.merge(abstract_graphdef, abstract_state).to_params(), layer.to_params())


def test_mismatched_params_raise_clear_errors():
  params = gj.gru(H).init(jax.random.key(0), I)
  with pytest.raises(TypeError, match=r"params must be LSTMParams for gj\.lstm\(5\)"):
    Recurrent.from_params(gj.lstm(H), params)
  with pytest.raises(ValueError, match=r"expected \(4, 18\)"):
    check_params(gj.gru(H + 1), params, I)
  with pytest.raises(TypeError, match=r"rngs must be an nnx\.Rngs"):
    Recurrent(gj.gru(H), I)
  with pytest.raises(ValueError, match=r"set by the gj\.Stack"):
    Recurrent(gj.stack(gj.gru(H)), I, num_layers=2, rngs=nnx.Rngs(0))


class _Classifier(nnx.Module):
  """embedding -> gatejax layer -> dense: the shape of an ordinary Flax sequence model."""

  def __init__(self, vocab, classes, *, rngs):
    self.embed = nnx.Embed(vocab, 8, rngs=rngs)
    self.rnn = Recurrent(gj.gru(16), 8, rngs=rngs, time_major=False)
    self.head = nnx.Linear(16, classes, rngs=rngs)

  def __call__(self, tokens):
    carry, _ = self.rnn(self.embed(tokens))
    return self.head(carry)


@pytest.mark.slow
def test_trains_inside_a_flax_model_with_nnx_optimizer():
  # Recall the first token of a sequence after 5 distractors: needs the recurrence.
  vocab, time, batch = 4, 6, 64
  model = _Classifier(vocab, vocab, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

  def loss_fn(model, tokens):
    logits = model(tokens)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 0]).mean()

  @nnx.jit
  def train_step(model, optimizer, tokens):
    loss, grads = nnx.value_and_grad(loss_fn)(model, tokens)
    # optax.adam raises a Python float to an int32 count, which strict promotion rejects
    with jax.numpy_dtype_promotion("standard"):
      optimizer.update(model, grads)
    return loss

  before = model.rnn.to_params()
  losses = [
    float(train_step(model, optimizer, jax.random.randint(k, (batch, time), 0, vocab)))
    for k in jax.random.split(jax.random.key(1), 60)
  ]
  # chance is log(4) = 1.39; a model that recalls the first token drives it near 0
  assert np.mean(losses[:5]) > 1.2
  assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:5])
  # the gatejax parameters themselves were trained (they are nnx.Params of the model)
  assert not np.allclose(model.rnn.to_params().w_h, before.w_h)
