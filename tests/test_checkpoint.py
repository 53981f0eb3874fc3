"""gatejax.checkpoint: bit-exact round trips, bit-exact resume, loud mismatches, no half-saved steps."""

import dataclasses
import shutil

import jax
import numpy as np
import pytest

import gatejax as gj
from gatejax import checkpoint, tasks, train
from gatejax.checkpoint import CheckpointError, Checkpoints

# One cell, task and optimizer object for the whole module: the jitted training step takes
# them as static arguments, so reusing them compiles it once.
CELL = gj.gru(4)
TASK = tasks.adding(6)
OPT = train.make_optimizer(learning_rate=1e-2)
FIT = {"batch_size": 8, "eval_every": 2, "eval_batch_size": 16, "progress": False}


def _assert_states_equal(a, b):
  a = a._replace(key=jax.random.key_data(a.key))
  b = b._replace(key=jax.random.key_data(b.key))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _without_seconds(history):
  return {k: v for k, v in history.to_dict().items() if k != "seconds"}


@pytest.fixture(scope="module")
def trained():
  """A short run: its state (step 3, Adam moments non-zero) and history."""
  return train.fit(CELL, TASK, key=jax.random.key(0), steps=3, optimizer=OPT, **FIT)


def test_round_trip_is_bit_exact(tmp_path, trained):
  path = checkpoint.save(
    tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT, history=trained.history
  )
  assert path == tmp_path / "3"
  restored = checkpoint.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  _assert_states_equal(restored.state, trained.state)
  assert jax.random.key_impl(restored.state.key) == jax.random.key_impl(trained.state.key)
  assert isinstance(restored.state.params, train.ModelParams)
  assert restored.history == trained.history
  assert restored.metadata["cell"]["kind"] == "gru" and restored.metadata["step"] == 3


def test_raw_uint32_keys_round_trip(tmp_path):
  state = train.init_state(CELL, TASK, jax.random.PRNGKey(1), OPT)
  assert state.key.dtype == np.uint32
  checkpoint.save(tmp_path, state, cell=CELL, task=TASK, optimizer=OPT)
  restored = checkpoint.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  assert restored.history is None
  np.testing.assert_array_equal(restored.state.key, state.key)
  assert restored.state.key.dtype == np.uint32


def test_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path):
  key, steps = jax.random.key(5), 7
  reference = train.fit(CELL, TASK, key=key, steps=steps, optimizer=OPT, **FIT)

  class Crash(Exception):
    pass

  def crash_at_5(state, history):
    if int(state.step) == 5:
      raise Crash

  with pytest.raises(Crash):
    checkpoint.fit(
      CELL, TASK, directory=tmp_path, key=key, steps=steps, every=3, optimizer=OPT,
      callback=crash_at_5, **FIT,
    )  # fmt: skip
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    assert ckpts.steps() == [3]  # steps 4 and 5 were lost with the crash
  resumed = checkpoint.fit(
    CELL, TASK, directory=tmp_path, key=key, steps=steps, every=3, optimizer=OPT, **FIT
  )
  _assert_states_equal(resumed.state, reference.state)
  assert _without_seconds(resumed.history) == _without_seconds(reference.history)
  # and the final state was saved
  final = checkpoint.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  _assert_states_equal(final.state, reference.state)


def test_resume_refuses_another_run_in_the_same_directory(tmp_path):
  checkpoint.fit(
    CELL, TASK, directory=tmp_path, key=jax.random.key(0), steps=2, every=2, optimizer=OPT, **FIT
  )
  with pytest.raises(CheckpointError, match=r"run: checkpoint has .*'key'"):
    checkpoint.fit(
      CELL, TASK, directory=tmp_path, key=jax.random.key(1), steps=4, every=2, optimizer=OPT, **FIT
    )


@pytest.mark.parametrize(
  ("cell", "task", "optimizer", "message"),
  [
    (gj.gru(5), TASK, OPT, r"cell\.hidden_size: checkpoint has 4, expected 5"),
    (gj.lstm(4), TASK, OPT, r"cell\.kind: checkpoint has 'gru', expected 'lstm'"),
    (gj.gru(4, reset="before"), TASK, OPT, r"cell\.reset: checkpoint has 'after'"),
    (CELL, tasks.copy_memory(3), OPT, r"task\.name: checkpoint has 'adding'"),
    (CELL, tasks.adding(9), OPT, r"task\.time: checkpoint has 6, expected 9"),
    (CELL, TASK, train.make_optimizer(optimizer="sgd"), r"opt_state\..*in the checkpoint but not"),
  ],
)
def test_mismatched_checkpoint_fails_with_a_clear_error(
  tmp_path, trained, cell, task, optimizer, message
):
  checkpoint.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  with pytest.raises(CheckpointError, match=message):
    checkpoint.restore(tmp_path, cell=cell, task=task, optimizer=optimizer)


def test_non_strict_restore_checks_only_shapes(tmp_path, trained):
  checkpoint.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  relu_gru = gj.gru(4, activation=jax.nn.relu)
  with pytest.raises(CheckpointError, match=r"cell\.activation: checkpoint has 'tanh'"):
    checkpoint.restore(tmp_path, cell=relu_gru, task=TASK, optimizer=OPT)
  restored = checkpoint.restore(tmp_path, cell=relu_gru, task=TASK, optimizer=OPT, strict=False)
  _assert_states_equal(restored.state, trained.state)
  with pytest.raises(CheckpointError, match=r"cell\.hidden_size"):
    checkpoint.restore(tmp_path, cell=gj.gru(3), task=TASK, optimizer=OPT, strict=False)


def test_saving_a_state_of_another_model_is_refused(tmp_path, trained):
  with pytest.raises(CheckpointError, match=r"params\.cell\.w_h: checkpoint has float32\[4, 12\]"):
    checkpoint.save(tmp_path, trained.state, cell=gj.gru(5), task=TASK, optimizer=OPT)


def test_an_interrupted_save_is_never_restored(tmp_path, trained, monkeypatch):
  import orbax.checkpoint as ocp

  state, history = trained
  later = state._replace(step=state.step + 1)
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    ckpts.save(state, history)

    # Interrupt a save in the middle of writing its items, through orbax's own code path.
    async def interrupted(*args, **kwargs):
      raise KeyboardInterrupt("killed while writing")

    with monkeypatch.context() as patch:
      patch.setattr(ocp.JsonCheckpointHandler, "async_save", interrupted)
      with pytest.raises(KeyboardInterrupt):
        ckpts.save(later, history)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("4.")]
    assert leftovers, "the interrupted save should leave its temporary directory behind"
    assert ckpts.steps() == [3]
    assert int(ckpts.restore().state.step) == 3
    with pytest.raises(FileNotFoundError, match="no finalized checkpoint of step 4"):
      ckpts.restore(4)

  # A step directory that lacks an item (copied by hand, or a store without atomic renames).
  shutil.copytree(tmp_path / "3", tmp_path / "9")
  shutil.rmtree(tmp_path / "9" / "gatejax")
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    with pytest.raises(CheckpointError, match="incomplete: it lacks gatejax"):
      ckpts.restore()
    # the interrupted step can be saved again
    ckpts.save(later, dataclasses.replace(history))
    assert 4 in ckpts.steps()
    _assert_states_equal(ckpts.restore(4).state, later)
  assert not any(p.name.startswith("4.") for p in tmp_path.iterdir()), "leftover not cleared"


def test_restore_from_an_empty_directory_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match="no finalized checkpoint"):
    checkpoint.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
