"""Bad training options (SPEC §6): a ValueError or TypeError at once, naming the argument.

One table, as the other error tables (tests/error_cases.py): a case is a description, a
call, the exception type and a regex that the message must match.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest

import gatejax as gj


class Case(NamedTuple):
  id: str
  call: Any
  error: type
  match: str


INF, NAN = float("inf"), float("nan")


def _fit(**options):
  cell, task = gj.rnn(2), gj.tasks.adding(4)
  return gj.train.fit(cell, task, key=jax.random.key(0), steps=1, progress=False, **options)


def _make_optimizer(**options):
  return gj.train.make_optimizer(**options)


def _checkpoint_fit(**options):
  import tempfile

  with tempfile.TemporaryDirectory() as directory:
    _fit(checkpoints=directory, **options)


def _fit_with_checkpoints_of(cell):
  import tempfile

  with tempfile.TemporaryDirectory() as directory:
    task, opt = gj.tasks.adding(4), gj.train.make_optimizer()
    with gj.train.Checkpoints(directory, cell=cell, task=task, optimizer=opt) as ckpts:
      _fit(checkpoints=ckpts)


LR = r"learning_rate must be a finite number > 0 or an optax schedule, got "
TRAINING_CASES = [
  Case("learning_rate inf", lambda: _make_optimizer(learning_rate=INF), ValueError, LR + "inf"),
  Case("learning_rate nan", lambda: _make_optimizer(learning_rate=NAN), ValueError, LR + "nan"),
  Case("learning_rate zero", lambda: _make_optimizer(learning_rate=0), ValueError, LR + "0"),
  Case("learning_rate -1 in fit", lambda: _fit(learning_rate=-1.0), ValueError, LR + r"-1\.0"),
  Case(
    "learning_rate nan beside an optax optimizer",
    lambda: _fit(learning_rate=NAN, optimizer=gj.train.make_optimizer()),
    ValueError,
    LR + "nan",
  ),
  Case(
    "learning_rate str", lambda: _make_optimizer(learning_rate="1e-3"), TypeError, r"learning_rate"
  ),
  Case("learning_rate bool", lambda: _fit(learning_rate=True), TypeError, r"learning_rate"),
  Case(
    "clip_norm inf",
    lambda: _make_optimizer(clip_norm=INF),
    ValueError,
    r"clip_norm must be a finite number > 0 or None for no clipping, got inf",
  ),
  Case("clip_norm nan in fit", lambda: _fit(clip_norm=NAN), ValueError, r"clip_norm.*got nan"),
  Case("clip_norm str", lambda: _make_optimizer(clip_norm="1"), TypeError, r"clip_norm"),
  Case(
    "divergence_threshold nan",
    lambda: _fit(divergence_threshold=NAN),
    ValueError,
    r"divergence_threshold must be a finite number > 0 or None .*got nan",
  ),
  Case(
    "divergence_threshold inf",
    lambda: _fit(divergence_threshold=INF),
    ValueError,
    r"divergence_threshold must be a finite number > 0 or None .*got inf",
  ),
  Case(
    "divergence_threshold str",
    lambda: _fit(divergence_threshold="1e3"),
    TypeError,
    r"divergence_threshold",
  ),
  Case(
    "learning_rate beside an optax transformation",
    lambda: _fit(learning_rate=1e-2, optimizer=optax.adam(1e-3)),
    ValueError,
    r"learning_rate=0\.01 is given beside an optax transformation, which has its own",
  ),
  Case(
    "clip_norm None beside an optax transformation",
    lambda: _fit(clip_norm=None, optimizer=optax.adam(1e-3)),
    ValueError,
    r"clip_norm=None is given beside an optax transformation",
  ),
  Case("optimizer of another type", lambda: _fit(optimizer=1e-3), TypeError, r"optimizer must be"),
  Case("axis without a mesh", lambda: _fit(axis="data"), ValueError, r"axis .* needs a mesh"),
  Case(
    "checkpoints of another type", lambda: _fit(checkpoints=3), TypeError, r"checkpoints must be"
  ),
  Case(
    "checkpoints of another cell",
    lambda: _fit_with_checkpoints_of(gj.rnn(3)),
    ValueError,
    r"checkpoints were opened for another run.*\n  cell\.hidden_size: checkpoint has 3, expected 2",
  ),
  Case(
    "fit with checkpoints learning_rate inf",
    lambda: _checkpoint_fit(learning_rate=INF),
    ValueError,
    LR + "inf",
  ),
]


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[c.id for c in TRAINING_CASES])
def test_bad_training_option_raises_a_clear_error(case):
  with pytest.raises(case.error, match=case.match):
    case.call()


def test_training_case_ids_are_unique():
  assert len({c.id for c in TRAINING_CASES}) == len(TRAINING_CASES)


# ---------------------------------------------------------------------------
# Issue 20, item 16: refused at once, in the words of gj.scan; a file is no directory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"impl": "fused"}, "fused"], ids=["dict", "str"])
def test_options_of_another_type_are_refused_before_anything_compiles(options):
  from gatejax import _jit

  with pytest.raises(TypeError) as scan_error:
    gj.scan(gj.rnn(2), gj.rnn(2).init(jax.random.key(0), 1), jnp.ones((3, 1)), options=options)
  compiled = _jit.misses()
  keys = jax.random.split(jax.random.key(0), 2)
  calls = {
    "fit": lambda: _fit(options=options, eval_every=0),
    "train_many_seeds": lambda: gj.train.train_many_seeds(
      gj.rnn(2), gj.tasks.adding(4), keys, steps=1, options=options
    ),
  }
  for name, call in calls.items():
    with pytest.raises(TypeError) as error:
      call()
    assert str(error.value) == str(scan_error.value), name  # the same words as gj.scan
  assert _jit.misses() == compiled  # refused before the first compilation


def test_a_checkpoint_directory_that_is_a_file_is_named(tmp_path):
  file = tmp_path / "run"
  file.write_text("not a directory")
  cell, task, opt = gj.rnn(2), gj.tasks.adding(4), gj.train.make_optimizer()
  state = gj.train.init_state(cell, task, jax.random.key(0), opt)
  is_a_file = rf"checkpoint directory {file} is a file, not a directory"
  with pytest.raises(gj.train.CheckpointError, match=is_a_file):
    gj.train.save(file, state, cell=cell, task=task, optimizer=opt)
  with pytest.raises(gj.train.CheckpointError, match=is_a_file):
    _fit(checkpoints=file)
  inside = rf"checkpoint directory {file / 'steps'} cannot be created: {file} is a file"
  with pytest.raises(gj.train.CheckpointError, match=inside):
    gj.train.save(file / "steps", state, cell=cell, task=task, optimizer=opt)
  assert file.read_text() == "not a directory"
