"""Training: learning, history, clipping, divergence reported, bit-for-bit resume, every cell.

Cells are built once per module so that tests sharing a (cell, task, optimizer) share
one compiled step: compilation, not training, is what costs here.
"""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import tasks, train
from registry import NAMES, PATHS, make

SMALL = {name: make(name, 4) for name in NAMES}
VARIABLE = tasks.adding(6, variable_length=True, min_length=3)
CLIP = 1e-3  # far below the gradient norms here, so clipping is always active
SGD_CLIPPED = train.make_optimizer(learning_rate=1.0, clip_norm=CLIP, optimizer="sgd")


def _norm(tree) -> float:
  leaves = jax.tree.leaves(tree)
  return math.sqrt(sum(float(np.sum(np.asarray(leaf, np.float64) ** 2)) for leaf in leaves))


# ---------------------------------------------------------------------------
# Learning and the history
# ---------------------------------------------------------------------------


def test_lstm_learns_the_adding_problem():
  cell, task = gj.lstm(32), tasks.adding(10)
  result = train.fit(
    cell, task, key=jax.random.key(0), steps=200, batch_size=64, learning_rate=1e-2,
    eval_every=50, eval_batch_size=512, progress=False,
  )  # fmt: skip
  h = result.history
  assert not h.diverged and h.diverged_at is None
  # Untrained, the model is worse than always predicting 1; trained, far better.
  assert h.eval_loss[0] > task.baseline
  assert h.eval_loss[-1] < 0.1 * task.baseline
  # What the history records.
  assert int(result.state.step) == 200
  assert h.step == list(range(200))
  assert len(h.loss) == len(h.grad_norm) == 200
  assert h.metric == [] and h.eval_metric == []  # adding has no metric
  assert h.eval_step == [0, 50, 100, 150, 200]
  assert h.task == "adding" and h.baseline == task.baseline and h.initial_loss == h.loss[0]
  assert h.seconds > 0
  assert np.mean(h.loss[-20:]) < 0.1 * np.mean(h.loss[:20])
  assert all(math.isfinite(g) and g > 0 for g in h.grad_norm)
  # The evaluation set is fixed and drawn from its own key: the final eval loss is that
  # of the final parameters on the batch that key draws.
  eval_batch = task.sample(jax.random.split(jax.random.key(0))[1], 512)
  final = train.evaluate(cell, task, result.params, eval_batch)
  assert float(final.loss) == pytest.approx(h.eval_loss[-1], rel=1e-5)
  back = train.History.from_dict(json.loads(json.dumps(h.to_dict(), allow_nan=False)))
  assert back == h


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def test_predict_reads_the_last_valid_output():
  cell = SMALL["lstm"]  # its carry is (h, c): the output must be h
  params = train.init_model(cell, VARIABLE, jax.random.key(0))
  batch = VARIABLE.sample(jax.random.key(1), 6)
  predictions = train.predict(cell, VARIABLE, params, batch)
  chex.assert_shape(predictions, (6, 1))
  # Reference: the unmasked run, read at each sequence's own last step. Padding only
  # follows a sequence's last step, so the outputs up to it are the same.
  _, ys = gj.scan(cell, params.cell, batch.xs)
  lengths = np.asarray(batch.lengths)
  assert len(set(lengths.tolist())) > 1
  for b, length in enumerate(lengths):
    expected = ys[length - 1, b] @ params.readout.w + params.readout.b
    np.testing.assert_allclose(predictions[b], expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Clipping and the pure step
# ---------------------------------------------------------------------------


def test_optimizer_clips_by_global_norm():
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[12.0]])}  # global norm 13
  for clip in (0.5, 13.0, 100.0):
    opt = train.make_optimizer(learning_rate=1.0, clip_norm=clip, optimizer="sgd")
    updates, _ = opt.update(grads, opt.init(grads))
    assert _norm(updates) == pytest.approx(min(13.0, clip), rel=1e-6)
    # Direction kept: the update is -g scaled.
    np.testing.assert_allclose(updates["a"] / -grads["a"], min(1.0, clip / 13.0), rtol=1e-6)
  opt = train.make_optimizer(learning_rate=1.0, clip_norm=None, optimizer="sgd")
  updates, _ = opt.update(grads, opt.init(grads))
  chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -g, grads))
  assert train.make_optimizer(learning_rate=0.1) is train.make_optimizer(learning_rate=0.1)


def test_step_measures_the_gradient_before_clipping():
  cell, task = SMALL["rnn_tanh"], VARIABLE
  clip, opt = CLIP, SGD_CLIPPED
  state = train.init_state(cell, task, jax.random.key(0), opt)
  batch = train.batch_for_step(task, state, 8)
  loss, grads = jax.jit(jax.value_and_grad(lambda p, b: train.loss_fn(cell, task, p, b)))(
    state.params, batch
  )
  new, metrics = train.step_on_batch(cell, task, opt, state, batch)
  assert float(metrics.grad_norm) == pytest.approx(_norm(grads), rel=1e-5)
  assert float(metrics.grad_norm) > 10 * clip
  assert float(metrics.loss) == pytest.approx(float(loss), rel=1e-6)
  step = jax.tree.map(lambda a, b: a - b, new.params, state.params)
  assert _norm(step) == pytest.approx(clip, rel=1e-3)
  assert int(new.step) == 1
  # train_step is step_on_batch on the step's own batch (up to float rounding: XLA may
  # fuse the two programs differently).
  again, again_metrics = train.train_step(cell, task, opt, state, batch_size=8)
  chex.assert_trees_all_close(again.params, new.params, rtol=1e-5, atol=1e-8)
  chex.assert_trees_all_close(again_metrics, metrics, rtol=1e-5)


# ---------------------------------------------------------------------------
# Divergence is reported, never raised
# ---------------------------------------------------------------------------


def test_relu_gated_lstm_divergence_is_reported():
  # ReLU gates are unbounded: once Adam's first large step (lr 1, no clipping) pushes the
  # forget and output gates above 1, the cell and the loss explode within a step.
  task = tasks.adding(20)
  given = []
  result = train.fit(
    gj.lstm(8, gate_fn=jax.nn.relu), task, key=jax.random.key(0), steps=30, batch_size=16,
    learning_rate=1.0, clip_norm=None, eval_every=0, progress=False,
    callback=lambda state, history: given.append(state),
  )  # fmt: skip
  h = result.history
  assert h.diverged
  assert h.diverged_at is not None and h.diverged_at > 0  # it trained first, then exploded
  # The diverged step's update (from a NaN gradient here) is not applied: the result is
  # the state before it, the last one the callback saw, with every parameter finite.
  assert h.step[-1] == h.diverged_at and int(result.state.step) == h.diverged_at
  assert not math.isfinite(h.grad_norm[-1])
  assert [int(state.step) for state in given] == list(range(1, h.diverged_at + 1))
  chex.assert_trees_all_equal(result.state, given[-1])
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.params))
  assert math.isfinite(h.loss[0])
  last = h.loss[-1]
  assert not math.isfinite(last) or last > 1000 * max(task.baseline, h.loss[0])
  json.dumps(h.to_dict(), allow_nan=False)


def test_nan_at_the_first_step_is_reported():
  # A ReLU update gate with bias 2 keeps z > 1: h_t = z h_{t-1} + (1 - z) n grows each
  # step, and z grows with h, so 30 steps overflow float32 and the loss is NaN at once.
  result = train.fit(
    gj.gru(4, gate_fn=jax.nn.relu, update_bias=2.0), tasks.adding(30), key=jax.random.key(0),
    steps=30, batch_size=16, eval_every=0, progress=False,
  )  # fmt: skip
  h = result.history
  assert h.eval_step == []
  assert h.diverged and h.diverged_at == 0 and h.step == [0]
  assert not math.isfinite(h.loss[0]) or not math.isfinite(h.grad_norm[0])
  # A diverged run is not continued.
  again = train.fit(
    gj.gru(8), tasks.adding(30), key=jax.random.key(0), steps=30, state=result.state,
    history=h, progress=False,
  )  # fmt: skip
  assert again.history is h and int(again.state.step) == 0  # the initial state, never updated


# ---------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------


def test_resumed_run_equals_the_uninterrupted_run():
  cell, task = SMALL["gru_after"], VARIABLE
  options = dict(key=jax.random.key(3), steps=12, batch_size=8, eval_every=4, progress=False)
  full = train.fit(cell, task, **options)

  seen = []

  def stop_at_five(state, history):
    seen.append((int(state.step), len(history.loss)))
    return int(state.step) == 5

  first = train.fit(cell, task, **options, callback=stop_at_five)
  assert seen == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
  assert int(first.state.step) == 5
  # Through JSON, as a checkpoint would store the history.
  history = train.History.from_dict(json.loads(json.dumps(first.history.to_dict())))
  resumed = train.fit(cell, task, **options, state=first.state, history=history)

  assert int(resumed.state.step) == int(full.state.step) == 12
  chex.assert_trees_all_equal(resumed.state.params, full.state.params)
  chex.assert_trees_all_equal(resumed.state.opt_state, full.state.opt_state)
  np.testing.assert_array_equal(
    jax.random.key_data(resumed.state.key), jax.random.key_data(full.state.key)
  )
  a, b = resumed.history.to_dict(), full.history.to_dict()
  a.pop("seconds"), b.pop("seconds")
  assert a == b


# ---------------------------------------------------------------------------
# Every cell, every task
# ---------------------------------------------------------------------------


# Each cell on one task, so that every cell and every task is trained once.
COPY = tasks.copy_memory(3, n_symbols=3, copy_length=2)
EVERY = {
  "rnn_tanh": VARIABLE,
  "gru_after": VARIABLE,
  "gru_before": tasks.digits(),
  "lstm": VARIABLE,
  "mgu": COPY,
  "minimal_rnn": VARIABLE,
  "min_lstm": VARIABLE,
  "user_dict": VARIABLE,
  "user_array": COPY,
}


@pytest.mark.parametrize("name", PATHS)
def test_every_cell_trains(name):
  cell, task = SMALL[name], EVERY[name]
  key = jax.random.key(0)
  # No evaluation: it would compile one more program per cell; the tests below evaluate.
  result = train.fit(cell, task, key=key, steps=3, batch_size=8, eval_every=0, progress=False)
  h = result.history
  assert not h.diverged and len(h.loss) == 3 and all(math.isfinite(x) for x in h.loss)
  assert h.eval_step == []
  start = train.init_model(cell, task, jax.random.split(jax.random.split(key)[0])[0])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params, start)
  assert all(jax.tree.leaves(changed))  # every parameter, cell and readout, is trained
  assert len(h.metric) == (3 if task.metric else 0)


def test_log_every_and_metric_recorded():
  cell, task = SMALL["rnn_relu"], COPY
  result = train.fit(
    cell, task, key=jax.random.key(1), steps=7, batch_size=8, log_every=3, eval_every=5,
    progress=False,
  )  # fmt: skip
  h = result.history
  assert h.step == [0, 3, 6]  # every third step and the last
  assert len(h.metric) == 3 and all(0 <= m <= 1 for m in h.metric)
  assert h.eval_step == [0, 5, 7] and len(h.eval_metric) == 3
  assert h.metric_name == "accuracy"


def test_digits_evaluates_on_the_held_out_split():
  cell, test_split = SMALL["gru_before"], tasks.digits(split="test")
  result = train.fit(
    cell, tasks.digits(), key=jax.random.key(0), steps=2, batch_size=8, eval_every=2,
    eval_task=test_split, progress=False,
  )  # fmt: skip
  expected = train.evaluate(cell, test_split, result.params, test_split.dataset())
  assert result.history.eval_loss[-1] == pytest.approx(float(expected.loss), rel=1e-6)
  assert result.history.eval_metric[-1] == pytest.approx(float(expected.metric))


def test_progress_bar_shows_the_loss(capsys):
  train.fit(SMALL["rnn_tanh"], VARIABLE, key=jax.random.key(0), steps=3, batch_size=8, eval_every=0)
  err = capsys.readouterr().err
  assert "gj.rnn(4) adding" in err and "loss=" in err and "3/3" in err


def test_optax_transformation_as_optimizer():
  cell, key = SMALL["rnn_tanh"], jax.random.key(0)
  result = train.fit(
    cell, VARIABLE, key=key, steps=2, batch_size=8, optimizer=SGD_CLIPPED, eval_every=0,
    progress=False,
  )  # fmt: skip
  # Two SGD steps clipped to norm CLIP move the parameters by at most 2 CLIP (Adam's
  # default would move every coordinate by about its learning rate, 1e-3).
  start = train.init_model(cell, VARIABLE, jax.random.split(jax.random.split(key)[0])[0])
  moved = _norm(jax.tree.map(lambda a, b: a - b, result.params, start))
  assert CLIP < moved <= 2 * CLIP * (1 + 1e-4)


@pytest.mark.parametrize(
  "kwargs, error",
  [
    (dict(steps=-1), ValueError),
    (dict(steps=2.0), TypeError),
    (dict(batch_size=0), ValueError),
    (dict(optimizer="lbfgs"), ValueError),
    (dict(clip_norm=0.0), ValueError),
    (dict(divergence_threshold=0.0), ValueError),
    (dict(eval_task=tasks.copy_memory(3)), ValueError),
    (dict(state="not a state"), TypeError),
  ],
)
def test_fit_rejects_bad_arguments(kwargs, error):
  options = dict(key=jax.random.key(0), steps=2, progress=False) | kwargs
  with pytest.raises(error):
    train.fit(SMALL["rnn_tanh"], VARIABLE, **options)


def test_fit_rejects_a_non_task():
  with pytest.raises(TypeError, match="task"):
    train.fit(SMALL["rnn_tanh"], "adding", key=jax.random.key(0), steps=1)


def test_history_round_trips_non_finite_values():
  h = train.History(task="t", baseline=0.5, step=[0, 1], loss=[1.0, math.nan])
  h.grad_norm = [math.inf, -math.inf]
  h.diverged, h.diverged_at = True, 1
  text = json.dumps(h.to_dict(), allow_nan=False)
  back = train.History.from_dict(json.loads(text))
  assert back.loss[0] == 1.0 and math.isnan(back.loss[1])
  assert back.grad_norm == [math.inf, -math.inf]
  assert back.diverged and back.diverged_at == 1
  with pytest.raises(ValueError, match="unknown_field"):
    train.History.from_dict({"unknown_field": 1})


def test_a_metric_of_nan_predictions_is_nan():
  """Issue 20 item 5: ``argmax`` calls NaN scores class 0, so NaN predictions counted as right."""
  cell, task = SMALL["rnn_tanh"], COPY
  params = train.init_model(cell, task, jax.random.key(0))
  batch = task.sample(jax.random.key(1), 4)
  zeros = batch._replace(targets=jnp.zeros_like(batch.targets))  # every label is class 0
  clean = train.evaluate(cell, task, params, zeros)
  reference = task.metric(train.predict(cell, task, params, zeros), zeros)
  assert float(clean.metric) == float(reference)  # finite predictions: the task's own metric
  nan = jnp.full_like(params.readout.b, jnp.nan)
  broken = params._replace(readout=params.readout._replace(b=nan))
  # What the bare metric says of all-NaN predictions against labels 0: all right.
  assert float(task.metric(train.predict(cell, task, broken, zeros), zeros)) == 1.0
  result = train.evaluate(cell, task, broken, zeros)
  assert math.isnan(float(result.loss)) and math.isnan(float(result.metric))
  # One NaN sequence among finite ones is enough, and the training step says the same.
  one = zeros._replace(xs=zeros.xs.at[:, 0].set(jnp.nan))
  assert math.isnan(float(train.evaluate(cell, task, params, one).metric))
  opt = train.make_optimizer()
  state = train.init_state(cell, task, jax.random.key(0), opt)._replace(params=broken)
  _, metrics = train.step_on_batch(cell, task, opt, state, zeros)
  assert math.isnan(float(metrics.metric))
