"""What the experiments share: cells and tasks by name, the one "learned", sentence helpers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax.experiments import _common


def test_cells_by_name_are_the_library_factories():
  for name, factory in _common.CELLS.items():
    assert factory is getattr(gj, name)
    assert _common.cell(name, 4) == factory(4)
  cell = _common.cell("gru", 4, gate_fn=jax.nn.relu)
  assert cell == gj.gru(4, gate_fn=jax.nn.relu) and cell != gj.gru(4)
  assert _common.cell("gru", 4, gate_fn=jax.nn.relu) is cell  # one value per arguments
  with pytest.raises(ValueError, match=r"cell must be one of .* got 'janet'"):
    _common.cell("janet", 4)


def test_keep_bias_is_the_option_chrono_sets():
  expected = {"gru": "update_bias", "lstm": "forget_bias", "mgu": "forget_bias"}
  expected["minimal_rnn"] = "update_bias"
  for name in _common.CELLS:
    assert _common.keep_bias(name) == expected.get(name)
  assert _common.default_option("lstm", "forget_bias") == 1.0
  assert _common.default_option("gru", "update_bias") == 0.0


def test_display_names():
  shown = {n: _common.display_name(n) for n in _common.CELLS}
  classic = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM", "minimal_rnn": "minimalRNN"}
  assert {n: shown[n] for n in classic} == classic
  assert shown["min_gru"] == "minGRU" and shown["min_lstm"] == "minLSTM"
  # Every built-in family spells its own cells (no cell falls back to its bare name).
  from gatejax.cells.names import DISPLAY_NAMES

  assert set(DISPLAY_NAMES) == set(_common.CELLS)


def test_a_cell_brings_its_title():
  """Each built-in cell carries its family's title; a cell without one is described."""
  from gatejax.cells.names import DISPLAY_NAMES
  from user_cells import Janet

  for name in _common.CELLS:
    cell = _common.cell(name, 8)
    assert cell.title == DISPLAY_NAMES[name] == _common.title(cell), name
  assert _common.title(gj.lstm(8, forget_bias=gj.chrono(30))) == "LSTM"
  assert _common.title(Janet(4)) == gj.protocol.describe(Janet(4))


def test_tasks_by_name():
  assert _common.task("adding", 12).time == 12
  with pytest.raises(ValueError, match="task must be one of"):
    _common.task("parity", 12)


def test_learned_is_below_a_tenth_of_the_baseline():
  baseline = 1 / 6
  assert _common.learned(0.099 * baseline, baseline)
  assert not _common.learned(0.1 * baseline, baseline)
  assert not _common.learned(math.nan, baseline)


def test_half_the_baseline_is_what_the_nearer_number_alone_reaches():
  """Why "learned" is a tenth and not a half: the later marked number plus the mean of the
  other, a model that remembers only the near past, already scores half the baseline."""
  task = _common.task("adding", 20)
  batch = task.sample(jax.random.key(0), 20_000)
  values, marks = batch.xs[..., 0], batch.xs[..., 1]
  later = jnp.where(jnp.arange(20)[:, None] >= 10, marks, 0.0)
  prediction = jnp.sum(values * later, axis=0) + 0.5
  loss = float(task.loss(prediction[:, None], batch))
  assert loss / task.baseline == pytest.approx(0.5, abs=0.03)
  assert not _common.learned(loss, task.baseline)


def test_sentence_helpers():
  assert (_common.pct(0.1234), _common.pct(np.inf)) == ("12.3%", "n/a")
  assert (_common.signed(0.0123), _common.signed(-1.0), _common.signed(math.nan)) == (
    "+0.012",
    "-1.000",
    "nan",
  )
  assert _common.bullets(["a.", "b."]) == "- a.\n- b."
