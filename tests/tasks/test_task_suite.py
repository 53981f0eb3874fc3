"""Generic task suites over the registry (task_registry.py): every task meets SPEC §7.

Deterministic per key; shapes and dtypes; ``length=`` honoured, past the training range
too; training lengths as documented; a hand-written solver scores 1 through
``task.metric``; the trivial predictors score ``chance`` (accuracy) and ``baseline``
(loss), measured over many samples; masks mark exactly the steps that ``loss`` and
``metric`` read; equal task values built apart are equal and never retrace.
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from task_registry import CASES, CLASSIFICATION, NAMES, SOLVABLE, many, tokens_of

from gatejax import _jit, tasks

B = 16  # one batch size for most tests: one compilation per task and length


def _sample(name, key=0, length=None):
  task = CASES[name].make()
  return task, task.sample(jax.random.key(key), B, length=length)


def _many(name, batches):
  task = CASES[name].make()
  return task, many(task, batches)


def _logits(task, answers):
  """Logits that put their mass on ``answers`` (a class per prediction)."""
  return jnp.asarray(10 * np.eye(task.output_size, dtype=np.float32)[np.asarray(answers)])


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name):
  task, batch = _sample(name)
  chex.assert_shape(batch.xs, (task.time, B, task.input_size))
  assert batch.xs.dtype == jnp.float32
  if task.kind == "regression":
    assert batch.targets.dtype == jnp.float32
  else:
    assert batch.targets.dtype == jnp.int32
  if task.readout == "last":
    chex.assert_shape(batch.targets, (B,))
    assert batch.mask is None
  else:
    chex.assert_shape(batch.targets, (task.time, B))
  if batch.mask is not None:
    chex.assert_shape(batch.mask, (task.time, B))
    assert batch.mask.dtype == jnp.bool_
  if CASES[name].train_lengths is None:
    assert batch.lengths is None
  else:
    chex.assert_shape(batch.lengths, (B,))
    assert batch.lengths.dtype == jnp.int32
  if task.kind == "classification":
    assert task.metric_name == "accuracy" and task.chance is not None
  hash(task)  # a static jit argument


@pytest.mark.parametrize("name", NAMES)
def test_token_inputs_are_one_hot(name):
  task, batch = _sample(name)
  if CASES[name].values is None or name == "digits":
    pytest.skip("real-valued inputs")
  xs = np.asarray(batch.xs)
  assert set(np.unique(xs)) <= {0.0, 1.0}
  steps = np.arange(task.time)[:, None]
  lengths = task.time if batch.lengths is None else np.asarray(batch.lengths)[None, :]
  valid = np.broadcast_to(steps < lengths, xs.shape[:2])
  np.testing.assert_array_equal(xs.sum(-1), valid.astype(np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_key(name):
  _, a = _sample(name, key=3)
  _, b = _sample(name, key=3)
  _, c = _sample(name, key=4)
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a.xs, c.xs)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].train_lengths is not None])
def test_training_lengths(name):
  """Lengths drawn per sequence, uniformly over the documented set; zero padding after."""
  task, batch = _many(name, 128)
  lengths = np.asarray(batch.lengths)
  allowed = CASES[name].train_lengths
  assert set(np.unique(lengths)) == set(allowed)  # every allowed length, nothing else
  counts = np.array([np.sum(lengths == n) for n in allowed])
  expected = len(lengths) / len(allowed)
  # Each count is binomial; 5 standard errors.
  assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected)), counts
  assert max(allowed) == task.time
  xs = np.asarray(batch.xs)
  for b in range(64):
    assert (xs[lengths[b] :, b] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_length_is_honoured(name):
  """``length=n`` gives exactly ``n`` steps for every sequence, past the training range too."""
  task = CASES[name].make()
  for n in CASES[name].lengths:
    batch = task.sample(jax.random.key(1), B, length=n)
    chex.assert_shape(batch.xs, (n, B, task.input_size))
    assert batch.lengths is None
    if task.readout == "all":
      chex.assert_shape(batch.targets, (n, B))
    if batch.mask is not None:
      chex.assert_shape(batch.mask, (n, B))
  assert task.time == CASES[name].make().time  # the task itself is unchanged


@pytest.mark.parametrize("name", SOLVABLE)
def test_solver_scores_one(name):
  """A Python loop over the one-hot inputs answers every scored step: metric 1, loss ~0."""
  case = CASES[name]
  task = case.make()
  batches = [task.sample(jax.random.key(2), B)]
  batches += [task.sample(jax.random.key(2), B, length=n) for n in case.lengths]
  for i, batch in enumerate(batches):
    answers = case.solve(batch.xs)
    if task.kind == "regression":
      predictions = jnp.asarray(answers, jnp.float32)[:, None]
      assert float(task.loss(predictions, batch)) < 1e-10
      continue
    predictions = _logits(task, answers)
    assert float(task.metric(predictions, batch)) == 1.0
    if i == 0:  # at the training lengths (the metric suffices at the others)
      assert float(task.loss(predictions, batch)) < 1e-2
      assert float(tasks.sequence_accuracy(predictions, batch)) == 1.0


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_trivial_predictors_score_chance_and_baseline(name):
  """Over many samples: uniform guessing scores ``chance``; uniform logits score ``baseline``."""
  case = CASES[name]
  task, batch = _many(name, 128)
  values = np.array(case.values)
  assert task.chance == pytest.approx(1 / len(values))
  shape = (*batch.targets.shape,)
  if task.name == "copy":
    scored = np.zeros(shape, bool)
    scored[-4:] = True  # the copy
  elif batch.mask is not None:
    scored = np.asarray(batch.mask)
  else:
    scored = np.ones(shape, bool)
  n = int(scored.sum())
  se = math.sqrt(task.chance * (1 - task.chance) / n)

  guesses = np.random.default_rng(0).choice(values, size=shape)
  accuracy = float(task.metric(_logits(task, guesses), batch))
  assert abs(accuracy - task.chance) < 5 * se, (accuracy, task.chance, se)

  targets = np.asarray(batch.targets)[scored]
  assert set(np.unique(targets)) <= set(values.tolist())
  if case.uniform:  # then no constant guess beats chance either
    frequencies = np.array([np.mean(targets == v) for v in values])
    assert np.all(np.abs(frequencies - task.chance) < 5 * se), frequencies

  if case.uniform_baseline:
    uniform = np.full(task.output_size, -1e9, np.float32)
    uniform[values] = 0.0
    logits = jnp.broadcast_to(jnp.asarray(uniform), (*shape, task.output_size))
    assert float(task.loss(logits, batch)) == pytest.approx(task.baseline, rel=1e-5)
    assert task.baseline == pytest.approx(math.log(len(values)))


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].values is None])
def test_regression_baseline(name):
  task, batch = _many(name, 512)
  n = batch.targets.shape[0]
  loss = float(task.loss(jnp.ones((n, 1), jnp.float32), batch))
  # The variance of a sum of two U(0, 1) is 1/6; the squared error's standard deviation is
  # sqrt(1/15 - 1/36) ~ 0.197, so the standard error here is ~0.0022: 5 of them.
  assert abs(loss - 1 / 6) < 5 * 0.197 / math.sqrt(n)
  assert task.baseline == pytest.approx(1 / 6)
  assert task.chance is None and task.metric is None


@pytest.mark.parametrize("name", [n for n in CLASSIFICATION if CASES[n].make().readout == "all"])
def test_loss_and_metric_read_only_scored_steps(name):
  """Changing a prediction where no step is scored changes nothing; at a scored one, both."""
  task, batch = _sample(name)
  answers = CASES[name].solve(batch.xs)
  predictions = _logits(task, answers)
  if batch.mask is None:
    scored = np.zeros(batch.targets.shape, bool)
    scored[-4:] = True  # copy_memory: the metric reads the copy (the loss every step)
  else:
    scored = np.asarray(batch.mask)
  noise = 30 * np.random.default_rng(9).normal(size=predictions.shape).astype(np.float32)
  elsewhere = jnp.where(jnp.asarray(scored)[..., None], predictions, noise)
  assert float(task.metric(elsewhere, batch)) == 1.0
  if batch.mask is not None:
    assert float(task.loss(elsewhere, batch)) == float(task.loss(predictions, batch))
  t, b = np.argwhere(scored)[0]
  wrong = predictions.at[t, b].set(_logits(task, (answers[t, b] + 1) % task.output_size))
  assert float(task.metric(wrong, batch)) < 1.0
  assert float(task.loss(wrong, batch)) > float(task.loss(predictions, batch)) + 1e-3


def _np_log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_loss_and_metric_equal_numpy(name):
  """Cross-entropy and accuracy over the scored steps, transcribed in float64 NumPy."""
  task, batch = _sample(name)
  shape = (*batch.targets.shape, task.output_size)
  predictions = jnp.asarray(3 * np.random.default_rng(1).normal(size=shape), jnp.float32)
  p, t = np.asarray(predictions, np.float64), np.asarray(batch.targets)
  scored = np.ones(t.shape, bool) if batch.mask is None else np.asarray(batch.mask)
  nll = -np.take_along_axis(_np_log_softmax(p), t[..., None], axis=-1)[..., 0]
  assert float(task.loss(predictions, batch)) == pytest.approx(nll[scored].mean(), rel=1e-6)
  if task.name == "copy":
    scored = np.zeros(t.shape, bool)
    scored[-4:] = True
  hits = (p.argmax(-1) == t)[scored]
  assert float(task.metric(predictions, batch)) == pytest.approx(hits.mean(), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_equal_tasks_never_retrace(name):
  """Two tasks built apart are equal, hash alike, and share every compilation."""
  first, second = CASES[name].make(), CASES[name].make()
  assert first == second and hash(first) == hash(second)
  # At shapes other tests compile too: what matters is that the second task adds nothing.
  n = CASES[name].lengths[-1]
  a = first.sample(jax.random.key(0), B, length=n)
  before = _jit.misses()
  b = second.sample(jax.random.key(0), B, length=n)
  assert _jit.misses() == before
  chex.assert_trees_all_equal(a, b)
  if first.metric is not None:
    predictions = jnp.zeros((*a.targets.shape, first.output_size), jnp.float32)
    first.metric(predictions, a)
    before = _jit.misses()
    second.metric(predictions, b)
  assert _jit.misses() == before

  chex.clear_trace_counter()  # chex counts by code object, shared by the parametrized runs

  @functools.partial(jax.jit, static_argnums=0)
  @chex.assert_max_traces(n=1)
  def inputs(task, key):
    return task.sample(key, B).xs

  for task in (first, second):
    inputs(task, jax.random.key(1))
    inputs(task, jax.random.key(2))


def test_tasks_of_different_kinds_never_compare_equal():
  # Specs are frozen dataclasses: equal fields of different tasks are still different tasks.
  assert tasks.parity(8) != tasks.cycle_navigation(8, modulus=2)
  assert tasks.mqar(16, 4, 10) != tasks.selective_copy(16, 4, 10)
  assert tasks.parity(8) != tasks.parity(9)
  assert tasks.flip_flop(16, 0.5) != tasks.flip_flop(16, 0.25)


def test_tokens_of_reads_padding():
  xs = np.zeros((3, 1, 2), np.float32)
  xs[0, 0, 1] = 1
  np.testing.assert_array_equal(tokens_of(xs)[:, 0], [1, -1, -1])
