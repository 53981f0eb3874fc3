"""The adding, copy-memory and digits tasks: their layouts, splits, baselines and lengths.

What every task shares (shapes, determinism, chance, solvers, retracing) is in
test_task_suite.py. The references here are independent of the generators: NumPy loops
that read a batch back (where are the marks, which symbols came first) and the trivial
predictors whose losses the baselines claim.
"""

import math
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gatejax import tasks


def _read_adding(batch):
  """Marks and target of each sequence, read back by a NumPy loop."""
  xs = np.asarray(batch.xs)
  time, size = xs.shape[:2]
  lengths = np.full(size, time) if batch.lengths is None else np.asarray(batch.lengths)
  out = []
  for b in range(size):
    marks = np.flatnonzero(xs[:, b, 1] == 1.0)
    assert set(np.unique(xs[:, b, 1])) <= {0.0, 1.0}
    out.append((marks, xs[marks, b, 0].sum(dtype=np.float64), lengths[b]))
  return out


def test_adding_targets_and_marks():
  task = tasks.adding(15)
  batch = task.sample(jax.random.key(1), 64)
  values = np.asarray(batch.xs[..., 0])
  assert values.min() >= 0.0 and values.max() < 1.0
  for b, (marks, total, length) in enumerate(_read_adding(batch)):
    assert len(marks) == 2
    assert 0 <= marks[0] < length // 2 <= marks[1] < length
    np.testing.assert_allclose(batch.targets[b], total, rtol=1e-6)


def test_adding_hand_checked_example():
  # A batch of one whose marks and values we can read by eye.
  batch = tasks.adding(4).sample(jax.random.key(7), 1)
  xs = np.asarray(batch.xs[:, 0])
  (first,) = np.flatnonzero(xs[:2, 1])
  (second,) = np.flatnonzero(xs[2:, 1]) + 2
  assert xs[:, 1].sum() == 2
  np.testing.assert_allclose(batch.targets[0], xs[first, 0] + xs[second, 0], rtol=1e-6)


def test_adding_variable_length():
  task = tasks.adding(20, variable_length=True, min_length=6)
  batch = task.sample(jax.random.key(2), 256)
  lengths = np.asarray(batch.lengths)
  assert lengths.min() >= 6 and lengths.max() <= 20
  assert len(np.unique(lengths)) > 5  # lengths really vary
  xs = np.asarray(batch.xs)
  for b, (marks, total, length) in enumerate(_read_adding(batch)):
    assert len(marks) == 2
    assert 0 <= marks[0] < length // 2 <= marks[1] < length
    assert (xs[length:, b] == 0).all()  # zero padding
    assert (xs[:length, b, 0] > 0).all()
    np.testing.assert_allclose(batch.targets[b], total, rtol=1e-6)


def test_adding_variable_length_default_minimum():
  batch = tasks.adding(10, variable_length=True).sample(jax.random.key(0), 200)
  assert int(batch.lengths.min()) >= 5 and int(batch.lengths.max()) <= 10


def test_copy_layout():
  delay, symbols, k = 6, 5, 3
  task = tasks.copy_memory(delay, n_symbols=symbols, copy_length=k)
  assert task.time == delay + 2 * k
  assert (task.input_size, task.output_size) == (symbols + 2, symbols + 1)
  batch = task.sample(jax.random.key(0), 32)
  xs, targets = np.asarray(batch.xs), np.asarray(batch.targets)
  assert (xs.sum(-1) == 1).all()  # one-hot
  inputs = xs.argmax(-1)
  for b in range(32):
    seq, tgt = inputs[:, b], targets[:, b]
    assert ((seq[:k] >= 1) & (seq[:k] <= symbols)).all()
    assert (seq[k : k + delay - 1] == 0).all()
    assert seq[k + delay - 1] == symbols + 1  # the delimiter
    assert (seq[k + delay :] == 0).all()
    assert (tgt[: delay + k] == 0).all()
    np.testing.assert_array_equal(tgt[delay + k :], seq[:k])
  assert len(np.unique(inputs[:k])) == symbols  # every symbol is drawn


def test_copy_delay_one():
  batch = tasks.copy_memory(1, n_symbols=3, copy_length=2).sample(jax.random.key(0), 1)
  seq = np.asarray(batch.xs[:, 0]).argmax(-1)
  assert seq[2] == 4 and (seq[3:] == 0).all() and len(seq) == 5


def test_digits_split():
  from sklearn.datasets import load_digits

  pixels, labels = load_digits(return_X_y=True)
  train = tasks.digits(split="train").dataset()
  test = tasks.digits(split="test").dataset()
  assert train.xs.shape[1] + test.xs.shape[1] == len(labels)
  # Reference: every fifth image of each class, in order, is a test image.
  is_test = np.zeros(len(labels), bool)
  for c in range(10):
    is_test[np.flatnonzero(labels == c)[4::5]] = True
  np.testing.assert_allclose(test.xs[..., 0].T, pixels[is_test] / 16, rtol=1e-6)
  np.testing.assert_allclose(train.xs[..., 0].T, pixels[~is_test] / 16, rtol=1e-6)
  np.testing.assert_array_equal(test.targets, labels[is_test])
  np.testing.assert_array_equal(train.targets, labels[~is_test])
  assert float(train.xs.min()) == 0.0 and float(train.xs.max()) == 1.0


def test_digits_samples_come_from_the_split():
  task = tasks.digits(split="test")
  data = task.dataset()
  batch = task.sample(jax.random.key(0), 40)
  images = np.asarray(data.xs[..., 0]).T
  for b in range(40):
    image = np.asarray(batch.xs[:, b, 0])
    (matches,) = np.nonzero((images == image).all(axis=1))
    assert len(matches) >= 1
    assert int(batch.targets[b]) in set(np.asarray(data.targets)[matches].tolist())


def test_digits_without_sklearn(monkeypatch):
  tasks._digits._load_digits.cache_clear()
  monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
  try:
    with pytest.raises(ImportError, match=r"scikit-learn.*gatejax\[test\]"):
      tasks.digits()
  finally:
    tasks._digits._load_digits.cache_clear()


def test_copy_baseline():
  delay, symbols, k = 9, 8, 10
  task = tasks.copy_memory(delay, n_symbols=symbols, copy_length=k)
  batch = task.sample(jax.random.key(0), 64)
  # The trivial predictor: certain blanks until the copy, then uniform over the symbols.
  blank = jnp.full((symbols + 1,), -1e4, jnp.float32).at[0].set(0.0)
  uniform = jnp.zeros((symbols + 1,), jnp.float32).at[0].set(-1e4)
  steps = jnp.concatenate([jnp.tile(blank, (delay + k, 1)), jnp.tile(uniform, (k, 1))])
  logits = jnp.broadcast_to(steps[:, None, :], (task.time, 64, symbols + 1))
  loss = float(task.loss(logits, batch))
  assert loss == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-5)
  assert task.baseline == pytest.approx(10 * math.log(8) / (delay + 20))


def test_digits_baseline_and_metric():
  task = tasks.digits(split="test")
  data = task.dataset()
  n = data.targets.shape[0]
  loss = float(task.loss(jnp.zeros((n, 10), jnp.float32), data))
  assert loss == pytest.approx(math.log(10), rel=1e-6)
  assert task.baseline == pytest.approx(math.log(10))
  assert task.metric is not None
  perfect = jax.nn.one_hot(data.targets, 10, dtype=jnp.float32)
  assert float(task.metric(perfect, data)) == 1.0


def test_sampling_under_jit():
  task = tasks.adding(8, variable_length=True)
  sample = jax.jit(task.sample, static_argnums=1)
  chex.assert_trees_all_equal(sample(jax.random.key(5), 4), task.sample(jax.random.key(5), 4))


def _np_log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_adding_loss_equals_a_numpy_transcription():
  """optax's squared error against the formula in float64: equal to float32 rounding."""
  task = tasks.adding(12)
  batch = task.sample(jax.random.key(0), 16)
  predictions = jnp.asarray(np.random.default_rng(1).normal(size=(16, 1)), jnp.float32)
  p, t = np.asarray(predictions, np.float64), np.asarray(batch.targets, np.float64)
  expected = np.mean((p[:, 0] - t) ** 2)
  assert float(task.loss(predictions, batch)) == pytest.approx(expected, rel=4e-7)


def test_adding_at_its_own_length_draws_what_a_fixed_task_draws():
  fixed = tasks.adding(12)
  variable = tasks.adding(12, variable_length=True)
  key = jax.random.key(4)
  chex.assert_trees_all_equal(fixed.sample(key, 8, length=12), fixed.sample(key, 8))
  chex.assert_trees_all_equal(variable.sample(key, 8, length=12), fixed.sample(key, 8))


def test_adding_at_other_lengths():
  batch = tasks.adding(12, variable_length=True).sample(jax.random.key(1), 64, length=31)
  assert batch.lengths is None and batch.xs.shape == (31, 64, 2)
  for b, (marks, total, length) in enumerate(_read_adding(batch)):
    assert length == 31 and 0 <= marks[0] < 15 <= marks[1] < 31
    np.testing.assert_allclose(batch.targets[b], total, rtol=1e-6)


def test_copy_at_other_lengths():
  k, symbols = 3, 4
  task = tasks.copy_memory(5, n_symbols=symbols, copy_length=k)
  for n in (2 * k + 1, 40):
    batch = task.sample(jax.random.key(0), 8, length=n)
    inputs, targets = np.asarray(batch.xs).argmax(-1), np.asarray(batch.targets)
    delay = n - 2 * k
    assert (inputs[k + delay - 1] == symbols + 1).all()  # the delimiter after the delay
    assert (np.delete(inputs[k:], delay - 1, axis=0) == 0).all()
    np.testing.assert_array_equal(targets[-k:], inputs[:k])
    assert (targets[:-k] == 0).all()


def test_digits_has_one_length():
  task = tasks.digits(split="test")
  key = jax.random.key(2)
  chex.assert_trees_all_equal(task.sample(key, 4, length=64), task.sample(key, 4))
