"""gatejax.train.checkpoints: bit-exact round trips and resumes, loud mismatches, no half saves."""

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import tasks, train
from gatejax.train import CheckpointError, Checkpoints
from gatejax.train import checkpoints as checkpoint_room

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


def _fit_into(directory, cell=CELL, task=TASK, *, every, keep=None, optimizer=OPT, **options):
  """``train.fit`` saving into ``directory`` every ``every`` steps (what checkpoint.fit was)."""
  with Checkpoints(
    directory, cell=cell, task=task, optimizer=optimizer, every=every, keep=keep
  ) as ckpts:
    return train.fit(cell, task, optimizer=optimizer, checkpoints=ckpts, **options)


@pytest.fixture(scope="module")
def trained():
  """A short run: its state (step 3, Adam moments non-zero) and history."""
  return train.fit(CELL, TASK, key=jax.random.key(0), steps=3, optimizer=OPT, **FIT)


def test_round_trip_is_bit_exact(tmp_path, trained):
  path = train.save(
    tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT, history=trained.history
  )
  assert path == tmp_path / "3"
  restored = train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  _assert_states_equal(restored.state, trained.state)
  assert jax.random.key_impl(restored.state.key) == jax.random.key_impl(trained.state.key)
  assert isinstance(restored.state.params, train.ModelParams)
  assert restored.history == trained.history
  assert restored.metadata["cell"]["kind"] == "gru" and restored.metadata["step"] == 3


def test_raw_uint32_keys_round_trip(tmp_path):
  state = train.init_state(CELL, TASK, jax.random.PRNGKey(1), OPT)
  assert state.key.dtype == np.uint32
  train.save(tmp_path, state, cell=CELL, task=TASK, optimizer=OPT)
  restored = train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
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
    _fit_into(tmp_path, every=3, key=key, steps=steps, callback=crash_at_5, **FIT)
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    assert ckpts.steps() == [3]  # steps 4 and 5 were lost with the crash
  resumed = _fit_into(tmp_path, every=3, key=key, steps=steps, **FIT)
  _assert_states_equal(resumed.state, reference.state)
  assert _without_seconds(resumed.history) == _without_seconds(reference.history)
  # and the final state was saved
  final = train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  _assert_states_equal(final.state, reference.state)


def test_resume_refuses_another_run_in_the_same_directory(tmp_path):
  # A directory records the run's key and batch size beside its model.
  run = dict(checkpoints=tmp_path, optimizer=OPT, **FIT)
  train.fit(CELL, TASK, key=jax.random.key(0), steps=2, **run)
  with pytest.raises(CheckpointError, match=r"run: checkpoint has .*'key'"):
    train.fit(CELL, TASK, key=jax.random.key(1), steps=4, **run)


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
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  with pytest.raises(CheckpointError, match=message):
    train.restore(tmp_path, cell=cell, task=task, optimizer=optimizer)


def test_non_strict_restore_checks_only_shapes(tmp_path, trained):
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  relu_gru = gj.gru(4, activation=jax.nn.relu)
  with pytest.raises(CheckpointError, match=r"cell\.activation: checkpoint has 'tanh'"):
    train.restore(tmp_path, cell=relu_gru, task=TASK, optimizer=OPT)
  restored = train.restore(tmp_path, cell=relu_gru, task=TASK, optimizer=OPT, strict=False)
  _assert_states_equal(restored.state, trained.state)
  with pytest.raises(CheckpointError, match=r"cell\.hidden_size"):
    train.restore(tmp_path, cell=gj.gru(3), task=TASK, optimizer=OPT, strict=False)


def test_saving_a_state_of_another_model_is_refused(tmp_path, trained):
  with pytest.raises(CheckpointError, match=r"params\.cell\.w_h: checkpoint has float32\[4, 12\]"):
    train.save(tmp_path, trained.state, cell=gj.gru(5), task=TASK, optimizer=OPT)


def test_every_differing_array_is_named(tmp_path, trained):
  """One line per array: each shape that differs, each array only one side has."""
  with pytest.raises(CheckpointError) as error:
    train.save(tmp_path, trained.state, cell=gj.gru(5), task=TASK, optimizer=OPT)
  lines = str(error.value).splitlines()[1:]
  # gru(5) against gru(4): every cell array and the readout's w, in params, mu and nu.
  shapes = {"w_x": "[2, 15]", "w_h": "[5, 15]", "b_x": "[15]", "b_h": "[15]"}
  for prefix in ("params", "opt_state.1.0.mu", "opt_state.1.0.nu"):
    for name, shape in shapes.items():
      assert f"  {prefix}.cell.{name}: checkpoint has float32" in "\n".join(lines)
      assert any(
        f"{prefix}.cell.{name}:" in ln and ln.endswith(f"expected float32{shape}") for ln in lines
      )
    assert any(ln.startswith(f"  {prefix}.readout.w:") for ln in lines)
  assert len(lines) == 15
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  with pytest.raises(CheckpointError) as error:
    train.restore(tmp_path, cell=CELL, task=TASK, optimizer=train.make_optimizer(optimizer="sgd"))
  extra = [
    ln for ln in str(error.value).splitlines() if "in the checkpoint but not in the state" in ln
  ]
  assert len(extra) == 13  # Adam's count, mu and nu (6 arrays each): SGD's state has none


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
    train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)


# ---------------------------------------------------------------------------
# Nothing lost: re-saves, divergence (issue 10, items 2 and 3)
# ---------------------------------------------------------------------------


def _fail_writes(patch):
  """Make every orbax JSON write fail, as a full disk or a killed writer would."""
  import orbax.checkpoint as ocp

  async def failing(*args, **kwargs):
    raise OSError("disk full (simulated)")

  patch.setattr(ocp.JsonCheckpointHandler, "async_save", failing)


def test_a_failed_re_save_keeps_the_previous_checkpoint(tmp_path, trained, monkeypatch):
  state, history = trained
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT, keep=1) as ckpts:
    ckpts.save(state)
    with monkeypatch.context() as patch:
      _fail_writes(patch)
      with pytest.raises(OSError, match="disk full"):
        ckpts.save(state, history)  # the same step again, now with its history
    assert ckpts.steps() == [3]
    restored = ckpts.restore()
    _assert_states_equal(restored.state, state)
    assert restored.history is None  # the first save's content, intact
    ckpts.save(state, history)  # a re-save that succeeds replaces it
    assert ckpts.restore().history == history
  assert sorted(p.name for p in tmp_path.iterdir()) == ["3"], "a re-save left files behind"


def test_fit_interrupted_in_its_final_re_save_resumes_from_the_last_step(tmp_path, monkeypatch):
  # steps % every == 0: the callback saves step 4, then fit saves step 4 again with the
  # final history. Failing that second save must leave step 4, not nothing (keep=1).
  options = dict(directory=tmp_path, key=jax.random.key(2), every=2, keep=1)
  original = Checkpoints.save
  calls = []

  def save(self, state, history=None):
    calls.append(int(state.step))
    if len(calls) == 3:
      _fail_writes(monkeypatch)
    return original(self, state, history)

  monkeypatch.setattr(Checkpoints, "save", save)
  with pytest.raises(OSError, match="disk full"):
    _fit_into(steps=4, **options, **FIT)
  monkeypatch.undo()
  assert calls == [2, 4, 4]
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    assert ckpts.steps() == [4]
    assert int(ckpts.restore().state.step) == 4


def test_a_swap_interrupted_between_its_renames_is_recovered(tmp_path, trained, monkeypatch):
  import os

  state, history = trained
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT, keep=1) as ckpts:
    ckpts.save(state)
    renames = []
    real_replace = os.replace

    def replace(src, dst):
      renames.append((src, dst))
      if len(renames) == 2:  # the old step is moved aside, the new one not yet in place
        raise KeyboardInterrupt("killed between the renames")
      real_replace(src, dst)

    with monkeypatch.context() as patch:
      patch.setattr(checkpoint_room.os, "replace", replace)
      with pytest.raises(KeyboardInterrupt):
        ckpts.save(state, history)
    # aside, into place (killed), and the old step back
    assert [(src.name, dst.name) for src, dst in renames] == [
      ("3", "3.replaced"),
      ("3", "3"),
      ("3.replaced", "3"),
    ]
    assert ckpts.steps() == [3]
    assert ckpts.restore().history is None

  # A process killed at that point leaves the old step aside; opening the directory puts it back.
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    ckpts.save(state, history)
  staging = tmp_path / ".gatejax-staging"
  staging.mkdir()
  (tmp_path / "3").rename(staging / "3.replaced")
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    assert ckpts.steps() == [3]
    assert ckpts.restore().history == history
  assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]


RELU_LSTM = gj.lstm(8, gate_fn=jax.nn.relu)
EXPLODING = train.make_optimizer(learning_rate=1.0, clip_norm=None)


def test_a_diverged_run_keeps_and_returns_its_last_good_state(tmp_path):
  # As in test_train: lr 1 without clipping throws the ReLU gates; the loss of step 1 is
  # ~1e13 and its gradient NaN, so applying step 1's update would make every parameter NaN.
  task = tasks.adding(20)
  saved = []

  def watch(state, history):
    saved.append(state)

  result = _fit_into(
    tmp_path, RELU_LSTM, task, every=1, optimizer=EXPLODING, key=jax.random.key(0), steps=30,
    batch_size=16, eval_every=0, progress=False, callback=watch,
  )  # fmt: skip
  h = result.history
  assert h.diverged and h.diverged_at == 1
  assert int(result.state.step) == h.diverged_at  # the state before the diverged update
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result.params))
  assert [int(s.step) for s in saved] == [1]  # the callback never saw a diverged state
  _assert_states_equal(result.state, saved[-1])
  with Checkpoints(tmp_path, cell=RELU_LSTM, task=task, optimizer=EXPLODING) as ckpts:
    assert ckpts.steps() == [1]
    latest = ckpts.restore()
  _assert_states_equal(latest.state, result.state)
  assert latest.history.diverged_at == 1


# ---------------------------------------------------------------------------
# Damage and misuse are named (issue 10, item 8)
# ---------------------------------------------------------------------------


def _truncate(file):
  file.write_text(file.read_text()[:20])


DAMAGE = {
  "state metadata missing": (
    lambda step: (step / "state" / "_METADATA").unlink(),
    r"step 3 .*item 'state': its _METADATA file.* is missing",
  ),
  "history file missing": (
    lambda step: (step / "history" / "metadata").unlink(),
    r"step 3 .*item 'history': its file metadata is missing",
  ),
  "history truncated": (
    lambda step: _truncate(step / "history" / "metadata"),
    r"step 3 .*item 'history': its file metadata is damaged",
  ),
  "history directory deleted": (
    lambda step: shutil.rmtree(step / "history"),
    r"step 3 .*item 'history': the checkpoint is incomplete: it lacks history",
  ),
  "gatejax metadata truncated": (
    lambda step: _truncate(step / "gatejax" / "metadata"),
    r"step 3 .*item 'gatejax': its file metadata is damaged",
  ),
  "step directory renamed": (
    lambda step: step.rename(step.parent / "7"),
    r"step 7 .*item 'gatejax': it records step 3, not 7",
  ),
  "array data deleted": (
    lambda step: [shutil.rmtree(d) for d in (step / "state").iterdir() if d.is_dir()],
    r"step 3 .*item 'state': .*cannot be read: ValueError: NOT_FOUND: Error opening \"zarr\"",
  ),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_checkpoint_names_its_step_and_item(tmp_path, trained, damage, capfd):
  state, history = trained
  train.save(tmp_path, state, cell=CELL, task=TASK, optimizer=OPT, history=history)
  harm, message = DAMAGE[damage]
  harm(tmp_path / "3")
  with pytest.raises(CheckpointError, match=message):
    train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
  err = capfd.readouterr().err
  assert "Traceback" not in err and "Event loop is closed" not in err, err


def test_a_failed_array_read_leaves_no_event_loop_tracebacks(tmp_path, trained, capfd):
  # orbax closed its event loop while the other arrays' reads were in flight; each of
  # them later printed "RuntimeError: Event loop is closed" (about half of the runs).
  import time

  state, history = trained
  train.save(tmp_path, state, cell=CELL, task=TASK, optimizer=OPT, history=history)
  for d in (tmp_path / "3" / "state").iterdir():
    if d.is_dir():
      shutil.rmtree(d)
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    for _ in range(6):
      with pytest.raises(CheckpointError, match="cannot be read"):
        ckpts.restore()
  time.sleep(0.5)  # the late reads complete on tensorstore's threads
  err = capfd.readouterr().err
  assert "Event loop is closed" not in err and "never retrieved" not in err, err


def test_a_checkpoint_saved_without_history_restores_without(tmp_path, trained):
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  assert not (tmp_path / "3" / "history").exists()
  assert train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT).history is None


def test_resuming_with_fewer_steps_than_saved_is_refused(tmp_path):
  options = dict(key=jax.random.key(0), every=2, **FIT)
  _fit_into(tmp_path, steps=4, **options)
  with pytest.raises(CheckpointError, match=r"step 4 .*beyond steps=2"):
    _fit_into(tmp_path, steps=2, **options)
  assert int(_fit_into(tmp_path, steps=4, **options).state.step) == 4  # the same: fine


def test_resuming_with_another_custom_optimizer_is_refused(tmp_path):
  import optax

  def run(optimizer, steps):
    return _fit_into(
      tmp_path, every=2, optimizer=optimizer, key=jax.random.key(0), steps=steps, **FIT
    )

  run(optax.adam(1e-2), 2)
  with pytest.raises(CheckpointError, match=r"step_size: checkpoint has -0\.01, expected -0\.02"):
    run(optax.adam(2e-2), 4)
  with pytest.raises(CheckpointError, match=r"b1: checkpoint has 0\.9, expected 0\.5"):
    run(optax.adam(1e-2, b1=0.5), 4)
  assert int(run(optax.adam(1e-2), 4).state.step) == 4  # an equal transformation resumes


def test_inject_hyperparams_learning_rate_is_compared(tmp_path, trained):
  import optax

  def opt(lr):
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)

  state = train.init_state(CELL, TASK, jax.random.key(0), opt(0.1))
  train.save(tmp_path, state, cell=CELL, task=TASK, optimizer=opt(0.1))
  with pytest.raises(
    CheckpointError, match=r"learning_rate'\]: checkpoint has 0\.1, expected 0\.2"
  ):
    train.restore(tmp_path, cell=CELL, task=TASK, optimizer=opt(0.2))
  restored = train.restore(tmp_path, cell=CELL, task=TASK, optimizer=opt(0.2), strict=False)
  assert float(restored.state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.1)
  train.restore(tmp_path, cell=CELL, task=TASK, optimizer=opt(0.1))


# ---------------------------------------------------------------------------
# What a cell's description holds (issue 20, item 7)
# ---------------------------------------------------------------------------


class Leaky:
  """A plain-class cell, as a user writes one: its options are attributes of the instance.

  ``scale`` only shapes ``init`` and is declared so; ``leak`` is part of every step.
  """

  init_only = ("scale",)

  def __init__(self, hidden_size, *, leak, scale=1.0):
    self.hidden_size, self.leak, self.scale = hidden_size, leak, scale
    self._cache = object()  # private: not part of the description

  def init(self, key, input_size, *, dtype=jnp.float32):
    k_x, k_h = jax.random.split(key)
    H = self.hidden_size
    return {
      "w_x": self.scale * jax.random.normal(k_x, (input_size, H), dtype) / input_size**0.5,
      "w_h": self.scale * jax.random.normal(k_h, (H, H), dtype) / H**0.5,
    }

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def step(self, params, h, x):
    h = (1 - self.leak) * h + self.leak * jnp.tanh(x @ params["w_x"] + h @ params["w_h"])
    return h, h


def test_a_plain_class_cell_records_its_attributes(tmp_path):
  state = train.init_state(Leaky(4, leak=0.1), TASK, jax.random.key(0), OPT)
  train.save(tmp_path, state, cell=Leaky(4, leak=0.1), task=TASK, optimizer=OPT)
  # Another instance with the same options restores; its stored description is complete.
  restored = train.restore(tmp_path, cell=Leaky(4, leak=0.1), task=TASK, optimizer=OPT)
  _assert_states_equal(restored.state, state)
  stored = restored.metadata["cell"]
  assert stored["type"].endswith("Leaky") and (stored["leak"], stored["scale"]) == (0.1, 1.0)
  assert not any(k.startswith("_") for k in stored)
  with pytest.raises(CheckpointError, match=r"cell\.leak: checkpoint has 0\.1, expected 0\.9"):
    train.restore(tmp_path, cell=Leaky(4, leak=0.9), task=TASK, optimizer=OPT)
  # What the cell declares init-only may differ: the restored parameters are its own.
  other_init = train.restore(tmp_path, cell=Leaky(4, leak=0.1, scale=3.0), task=TASK, optimizer=OPT)
  _assert_states_equal(other_init.state, state)


def test_built_in_cells_resume_with_other_initial_biases(tmp_path, trained):
  # forget_bias and update_bias only shape init (the fallback until cells declare init_only).
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  moved = gj.gru(4, update_bias=2.0)
  _assert_states_equal(
    train.restore(tmp_path, cell=moved, task=TASK, optimizer=OPT).state, trained.state
  )
  with pytest.raises(CheckpointError, match=r"cell\.activation: checkpoint has 'tanh'"):
    train.restore(tmp_path, cell=gj.gru(4, activation=jax.nn.relu), task=TASK, optimizer=OPT)


# ---------------------------------------------------------------------------
# One run per directory; what is found and ignored (issue 20, items 13 and 14)
# ---------------------------------------------------------------------------

_HOLD = textwrap.dedent(
  """
  import sys
  import gatejax as gj
  from gatejax import tasks, train
  opt = train.make_optimizer(learning_rate=1e-2)
  ckpts = train.Checkpoints(sys.argv[1], cell=gj.gru(4), task=tasks.adding(6), optimizer=opt)
  print("open", flush=True)
  sys.stdin.read()  # holds the directory until killed
  """
)


def test_a_directory_in_use_by_another_process_is_refused(tmp_path):
  command = [sys.executable, "-c", _HOLD, str(tmp_path)]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  with subprocess.Popen(command, env=env, **pipes) as holder:
    try:
      assert holder.stdout is not None and holder.stdout.readline() == "open\n"
      in_use = rf"checkpoint directory {tmp_path} is in use by process {holder.pid} on host "
      with pytest.raises(CheckpointError, match=in_use):
        train.fit(CELL, TASK, key=jax.random.key(0), steps=2, optimizer=OPT,
                  checkpoints=tmp_path, **FIT)  # fmt: skip
      with pytest.raises(CheckpointError, match=in_use):  # a restore too: not FileNotFoundError
        train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT)
    finally:
      holder.kill()
  # Killed: its lock file is left behind, naming it, and is taken over.
  assert f'"pid": {holder.pid}' in (tmp_path / ".gatejax-lock").read_text()
  result = train.fit(CELL, TASK, key=jax.random.key(0), steps=2, optimizer=OPT,
                     checkpoints=tmp_path, **FIT)  # fmt: skip
  assert int(result.state.step) == 2
  assert int(train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT).state.step) == 2
  assert not (tmp_path / ".gatejax-lock").exists()  # a clean close removes it


def test_a_process_opens_its_own_directory_twice(tmp_path, trained):
  with Checkpoints(tmp_path, cell=CELL, task=TASK, optimizer=OPT) as ckpts:
    ckpts.save(trained.state)
    assert int(train.restore(tmp_path, cell=CELL, task=TASK, optimizer=OPT).state.step) == 3
    assert (tmp_path / ".gatejax-lock").exists()  # still held by the outer one
  assert not (tmp_path / ".gatejax-lock").exists()


def test_a_directory_of_unfinished_saves_only_is_named_before_starting_afresh(tmp_path, trained):
  train.save(tmp_path, trained.state, cell=CELL, task=TASK, optimizer=OPT)
  (tmp_path / "3").rename(tmp_path / "3.orbax-checkpoint-tmp")  # as a save killed mid-write
  found = r"holds no finalized checkpoint, only 1 unfinished save\(s\) \(3\.orbax-checkpoint-tmp\)"
  with pytest.warns(UserWarning, match=found + r".*starts from step 0"):
    result = train.fit(CELL, TASK, key=jax.random.key(0), steps=2, optimizer=OPT,
                       checkpoints=tmp_path, **FIT)  # fmt: skip
  assert result.history.step == [0, 1]  # from scratch, as the warning said
  assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]
