"""gatejax.train.accuracy_by_length: a trained model's accuracy at each length (SPEC §7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import _jit

CELL = gj.gru(6)
TASK = gj.tasks.parity(max_length=6)


def hand_accuracy(params, key, length, batch_size):
  """The reference: the batch SPEC names, the model run by a Python loop over ``step``."""
  batch = TASK.sample(key, batch_size, length=length)
  assert batch.xs.shape[0] == length and batch.lengths is None
  h = CELL.initial_carry((batch_size,))
  for x in batch.xs:
    h, y = CELL.step(params.cell, h, x)
  logits = np.asarray(y) @ np.asarray(params.readout.w) + np.asarray(params.readout.b)
  return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(batch.targets)))


def test_each_point_is_the_metric_of_its_own_sample():
  params = gj.train.init_model(CELL, TASK, jax.random.key(0))
  key = jax.random.key(3)
  lengths = [3, 11, 20]
  got = gj.train.accuracy_by_length(CELL, TASK, params, lengths, key=key, batch_size=64)
  assert got.shape == (3,) and got.dtype == jnp.float32
  want = [hand_accuracy(params, jax.random.fold_in(key, i), n, 64) for i, n in enumerate(lengths)]
  np.testing.assert_allclose(got, want, atol=1e-6)
  # An untrained model guesses: somewhere near parity's chance, not at 0 or 1 everywhere.
  assert 0.2 < float(got.mean()) < 0.8


def test_a_train_state_is_read_as_its_parameters_and_nothing_recompiles():
  state = gj.train.init_state(CELL, TASK, jax.random.key(1), gj.train.make_optimizer())
  lengths = (4, 9)
  first = gj.train.accuracy_by_length(
    CELL, TASK, state, lengths, key=jax.random.key(2), batch_size=16
  )
  before = _jit.misses()
  again = gj.train.accuracy_by_length(
    CELL, TASK, state.params, lengths, key=jax.random.key(2), batch_size=16
  )
  assert _jit.misses() == before  # one program per length, compiled once
  np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
  ("kwargs", "error", "match"),
  [
    (dict(lengths=[]), ValueError, "lengths must be ints >= 1"),
    (dict(lengths=[0, 4]), ValueError, "lengths must be ints >= 1"),
    (dict(lengths=[2.5]), TypeError, "lengths must be a sequence of ints"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(options={"impl": "fused"}), TypeError, "options must be a gj.ScanOptions"),
  ],
)
def test_bad_arguments_are_named(kwargs, error, match):
  params = gj.train.init_model(CELL, TASK, jax.random.key(0))
  arguments = dict(lengths=[4], batch_size=8) | kwargs
  lengths = arguments.pop("lengths")
  with pytest.raises(error, match=match):
    gj.train.accuracy_by_length(CELL, TASK, params, lengths, key=jax.random.key(0), **arguments)


def test_a_task_without_a_metric_is_refused():
  task = gj.tasks.adding(10)
  params = gj.train.init_model(CELL, task, jax.random.key(0))
  with pytest.raises(ValueError, match="has no metric"):
    gj.train.accuracy_by_length(CELL, task, params, [10], key=jax.random.key(0), batch_size=4)
