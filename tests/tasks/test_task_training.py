"""A GRU learns a state-tracking task and a masked memory task through gatejax.train, and keeps
its accuracy at three times the training length: the tasks work end to end (a "last" readout
with per-sequence lengths, and an "all" readout whose loss reads only the mask)."""

import jax
import pytest

import gatejax as gj
from gatejax import tasks


@pytest.mark.parametrize(
  ("task", "steps"),
  [(tasks.parity(6), 200), (tasks.flip_flop(12, p_ignore=0.5), 100)],
  ids=["parity", "flip_flop"],
)
def test_gru_learns_and_generalises_in_length(task, steps):
  cell = gj.gru(8)
  result = gj.train.fit(
    cell,
    task,
    key=jax.random.key(0),
    steps=steps,
    batch_size=32,
    eval_batch_size=32,
    learning_rate=2e-2,
    progress=False,
  )
  assert result.history.loss[-1] < 0.05 * task.baseline
  batch = task.sample(jax.random.key(1), 256, length=3 * task.time)
  predictions = gj.train.predict(cell, task, result.state.params, batch)
  assert float(task.metric(predictions, batch)) >= 0.99
