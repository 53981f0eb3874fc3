r"""Checkpoints of :mod:`gatejax.train` runs with orbax: save, restore, resume bit for bit.

A checkpoint directory holds one sub-directory per saved step, written by an orbax
``CheckpointManager``::

  run/
    120/
      state/     the TrainState arrays: step, params, optimizer state, data key
      history/   the train.History, JSON
      gatejax/   what the state belongs to, JSON: cell kind, hidden and input size,
                 options, task, PRNG implementation, and the caller's run description

Because a training step draws its batch from ``fold_in(state.key, state.step)``, the
:class:`~gatejax.train.TrainState` is all a run depends on: restoring it and calling
:func:`gatejax.train.fit` again gives the uninterrupted run's parameters, optimizer state
and history bit for bit (only ``history.seconds`` differs). :func:`fit` does exactly that
in one call: it resumes from the latest checkpoint if there is one and saves every
``every`` steps.

Safety:

* **Mismatches fail loudly.** Restoring checks the stored description against the cell
  and task given (kind, hidden size, input size, GRU convention, activation names, task
  name, length and sizes), then every stored array's shape and dtype against the state
  they must fill, and names what differs. Nothing is reshaped, padded or truncated.
* **Interrupted saves never restore.** orbax writes a step into
  ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only once every item is on
  disk (on object stores without an atomic rename, it writes ``commit_success.txt`` last).
  Restoring takes only finalized steps, and also refuses a step directory that lacks
  any of its items.

orbax is imported only when a checkpoint is written or read, so ``import gatejax`` stays
light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

import gatejax
from gatejax import protocol, train
from gatejax.cells import Cell
from gatejax.tasks import Task

__all__ = [
  "CheckpointError",
  "Checkpoints",
  "Restored",
  "describe",
  "fit",
  "restore",
  "save",
]

FORMAT = "gatejax.checkpoint/1"


def _orbax() -> Any:
  try:
    import orbax.checkpoint as ocp
  except ImportError as e:
    raise ImportError(
      "gatejax.checkpoint needs orbax-checkpoint, an optional dependency: "
      "pip install 'gatejax[checkpoint]'"
    ) from e
  return ocp


class CheckpointError(ValueError):
  """A checkpoint does not fit what it is restored into, or is incomplete."""


class Restored(NamedTuple):
  """What :func:`restore` returns.

  Attributes:
    state: the :class:`~gatejax.train.TrainState`.
    history: the :class:`~gatejax.train.History` saved with it, or ``None``.
    metadata: the stored description (see :func:`describe`), plus ``"step"`` and ``"run"``.
  """

  state: train.TrainState
  history: train.History | None
  metadata: dict[str, Any]


def describe(cell: Cell, task: Task) -> dict[str, Any]:
  """The JSON description of a run's model and task that a checkpoint stores and checks.

  Example:
    >>> import gatejax as gj
    >>> from gatejax import checkpoint, tasks
    >>> checkpoint.describe(gj.gru(8), tasks.adding(20))["cell"]
    {'kind': 'gru', 'hidden_size': 8, 'input_size': 2, 'reset': 'after', 'update_bias': 0.0, 'gate_fn': 'sigmoid', 'activation': 'tanh'}
  """
  protocol.check(cell)
  if not isinstance(task, Task):
    raise TypeError(f"task must be a gatejax.tasks.Task, got {type(task).__name__}")
  described = protocol.config(cell)
  return {
    "cell": {
      **{k: described[k] for k in ("kind", "type") if k in described},
      "hidden_size": cell.hidden_size,
      "input_size": task.input_size,
      **{k: v for k, v in described.items() if k not in ("kind", "type", "hidden_size")},
    },
    "task": {
      "name": task.name,
      "time": task.time,
      "input_size": task.input_size,
      "output_size": task.output_size,
      "readout": task.readout,
      "kind": task.kind,
    },
  }


# Initial values only (init writes them into the parameters); a restored state has its own.
_INIT_ONLY = frozenset({"forget_bias", "update_bias"})
# What the arrays' shapes depend on: checked even with strict=False.
_SHAPE_FIELDS = {
  "cell": ("kind", "type", "hidden_size", "input_size"),
  "task": ("input_size", "output_size"),
}


def _mismatches(stored: Mapping[str, Any], wanted: Mapping[str, Any], strict: bool) -> list[str]:
  out = []
  for part in ("cell", "task"):
    have, want = stored.get(part, {}), wanted[part]
    for field, value in want.items():
      if field in _INIT_ONLY or (not strict and field not in _SHAPE_FIELDS[part]):
        continue
      if have.get(field) != value:
        out.append(f"{part}.{field}: checkpoint has {have.get(field)!r}, expected {value!r}")
  return out


def _storable(state: train.TrainState) -> tuple[train.TrainState, str | None]:
  """The state with its key as raw key data (what orbax stores), and the key's PRNG implementation."""
  key = state.key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return state._replace(key=jax.random.key_data(key)), str(jax.random.key_impl(key))
  return state, None


def _abstract_state(
  cell: Cell, task: Task, optimizer: optax.GradientTransformation, impl: str | None
) -> train.TrainState:
  """Shapes and dtypes of the storable state of a fresh run (no arrays are computed)."""

  def fresh() -> train.TrainState:
    key = jax.random.key(0) if impl is None else jax.random.key(0, impl=impl)
    state = train.init_state(cell, task, key, optimizer)
    if impl is None:
      state = state._replace(key=jax.random.key_data(state.key))
    return _storable(state)[0]

  return jax.eval_shape(fresh)


def _check_tree(stored: Any, abstract: Any) -> None:
  """Every array the state needs is stored with its shape and dtype, and nothing else is stored."""
  ocp = _orbax()

  def flat(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    pairs = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
    return {
      ".".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path): leaf
      for path, leaf in pairs
    }

  have = flat(stored, is_leaf=lambda x: isinstance(x, ocp.metadata.ArrayMetadata))
  want = flat(abstract)
  problems = [f"{n}: missing from the checkpoint" for n in sorted(set(want) - set(have))]
  problems += [
    f"{n}: in the checkpoint but not in the state" for n in sorted(set(have) - set(want))
  ]
  for n in sorted(set(want) & set(have)):
    h, w = have[n], want[n]
    if tuple(h.shape) != tuple(w.shape) or np.dtype(h.dtype) != np.dtype(w.dtype):
      problems.append(
        f"{n}: checkpoint has {np.dtype(h.dtype).name}{list(h.shape)}, "
        f"expected {np.dtype(w.dtype).name}{list(w.shape)}"
      )
  if problems:
    raise CheckpointError(
      "the checkpoint's arrays do not fit the training state (another optimizer, cell or "
      "task?):\n  " + "\n  ".join(problems[:20])
    )


class Checkpoints:
  """The checkpoints of one training run in ``directory``, one per saved step.

  A thin layer over an orbax ``CheckpointManager`` (synchronous saves). Use it as the
  ``callback`` of :func:`gatejax.train.fit` to save every ``every`` steps, and
  :meth:`restore` to continue.

  Args:
    directory: where the run's checkpoints live (created if missing).
    cell, task: the model and task of the run; written into every checkpoint and
      checked on restore.
    optimizer: the run's optax optimizer (it fixes the optimizer state's layout).
    every: save when ``state.step`` is a multiple of this (when called as a callback).
    keep: keep only the latest ``keep`` checkpoints (default: all).
    run: an optional JSON-able description of the rest of the run (seed, batch size,
      ...); stored, and on restore compared to the one given here.

  Example:
    >>> import tempfile, jax, gatejax as gj
    >>> from gatejax import checkpoint, tasks, train
    >>> cell, task, opt = gj.gru(4), tasks.adding(5), train.make_optimizer()
    >>> state = train.init_state(cell, task, jax.random.key(0), opt)
    >>> with checkpoint.Checkpoints(tempfile.mkdtemp(), cell=cell, task=task, optimizer=opt) as ckpts:
    ...   _ = ckpts.save(state)
    ...   restored = ckpts.restore()
    >>> bool((restored.state.params.cell.w_h == state.params.cell.w_h).all())
    True
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    *,
    cell: Cell,
    task: Task,
    optimizer: optax.GradientTransformation,
    every: int | None = None,
    keep: int | None = None,
    run: Mapping[str, Any] | None = None,
  ):
    ocp = _orbax()

    self.description = describe(cell, task)
    if not isinstance(optimizer, optax.GradientTransformation):
      raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r:.80}")
    for name, value in (("every", every), ("keep", keep)):
      if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    self.cell, self.task, self.optimizer = cell, task, optimizer
    self.every, self.run = every, None if run is None else json.loads(json.dumps(run))
    self.directory = Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      enable_async_checkpointing=False,
      # Leftovers of interrupted saves are never restorable; clear them so a step can be redone.
      cleanup_tmp_directories=True,
      create=True,
    )
    handlers = {
      "state": ocp.StandardCheckpointHandler(),
      "history": ocp.JsonCheckpointHandler(),
      "gatejax": ocp.JsonCheckpointHandler(),
    }
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  # -- lifecycle ---------------------------------------------------------------------

  def close(self) -> None:
    """Release orbax's resources (also done on leaving a ``with`` block)."""
    self._manager.close()

  def __enter__(self) -> Checkpoints:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()

  # -- listing -----------------------------------------------------------------------

  def steps(self) -> list[int]:
    """The steps of every finalized checkpoint, ascending."""
    self._manager.reload()
    return sorted(int(s) for s in self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The latest finalized step, or ``None`` when the directory holds none."""
    steps = self.steps()
    return steps[-1] if steps else None

  # -- saving ------------------------------------------------------------------------

  def save(self, state: train.TrainState, history: train.History | None = None) -> Path:
    """Save ``state`` (and ``history``) as the checkpoint of step ``state.step``; return its path.

    A step that is already saved is replaced.
    """
    ocp = _orbax()

    if not isinstance(state, train.TrainState):
      raise TypeError(f"state must be a train.TrainState, got {type(state).__name__}")
    if history is not None and not isinstance(history, train.History):
      raise TypeError(f"history must be a train.History or None, got {type(history).__name__}")
    step = int(jax.device_get(state.step))
    tree, impl = _storable(state)
    _check_tree(
      jax.eval_shape(lambda: tree), _abstract_state(self.cell, self.task, self.optimizer, impl)
    )
    meta = {
      "format": FORMAT,
      "gatejax_version": gatejax.__version__,
      "step": step,
      **self.description,
      "key_impl": impl,
      "run": self.run,
    }
    items: dict[str, Any] = {
      "state": ocp.args.StandardSave(tree),
      "gatejax": ocp.args.JsonSave(meta),
    }
    if history is not None:
      items["history"] = ocp.args.JsonSave(history.to_dict())
    if step in self.steps():
      self._manager.delete(step)
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    self._manager.wait_until_finished()
    return self.directory / str(step)

  def __call__(self, state: train.TrainState, history: train.History) -> bool:
    """The :func:`gatejax.train.fit` callback: save when ``state.step`` is a multiple of ``every``."""
    if self.every is None:
      raise ValueError("set every= to use Checkpoints as a fit callback")
    if int(jax.device_get(state.step)) % self.every == 0:
      self.save(state, history)
    return False

  # -- restoring ---------------------------------------------------------------------

  def metadata(self, step: int | None = None) -> dict[str, Any]:
    """The stored description of checkpoint ``step`` (default: the latest)."""
    return self._read_metadata(self._step_path(step))

  def _step_path(self, step: int | None) -> Path:
    steps = self.steps()
    if step is None:
      if not steps:
        raise FileNotFoundError(f"no finalized checkpoint in {self.directory}")
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(
        f"no finalized checkpoint of step {step} in {self.directory} (finalized: {steps})"
      )
    return self.directory / str(step)

  def _read_metadata(self, path: Path) -> dict[str, Any]:
    missing = [item for item in ("state", "gatejax") if not (path / item).is_dir()]
    if missing:
      raise CheckpointError(f"the checkpoint {path} is incomplete: it lacks {', '.join(missing)}")
    try:
      meta = json.loads((path / "gatejax" / "metadata").read_text())
    except (OSError, ValueError) as e:
      raise CheckpointError(f"the checkpoint {path} has no readable gatejax metadata: {e}") from e
    if meta.get("format") != FORMAT:
      raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (format {meta.get('format')!r})")
    return meta

  def restore(
    self,
    step: int | None = None,
    *,
    strict: bool = True,
    sharding: jax.sharding.Sharding | None = None,
  ) -> Restored:
    """Restore checkpoint ``step`` (default: the latest finalized one).

    Args:
      step: which step; ``None`` for the latest.
      strict: also require the options that do not change shapes to match (GRU
        convention, activation and gate names, task name and length, ``run``); with
        ``False`` only what the shapes depend on is checked.
      sharding: where to put every restored array, e.g. ``NamedSharding(mesh, P())`` to
        restore replicated over a mesh; default: the first local device.

    Raises:
      FileNotFoundError: no finalized checkpoint (of that step).
      CheckpointError: the checkpoint belongs to another cell, task, optimizer or run, or
        is incomplete; the message names every difference.
    """
    ocp = _orbax()

    path = self._step_path(step)
    meta = self._read_metadata(path)
    problems = _mismatches(meta, self.description, strict)
    if strict and self.run is not None and meta.get("run") != self.run:
      problems.append(f"run: checkpoint has {meta.get('run')!r}, expected {self.run!r}")
    if problems:
      raise CheckpointError(
        f"the checkpoint {path} belongs to another run:\n  " + "\n  ".join(problems)
      )
    impl = meta.get("key_impl")
    abstract = _abstract_state(self.cell, self.task, self.optimizer, impl)
    _check_tree(self._manager.item_metadata(int(meta["step"]))["state"].tree, abstract)
    target = (
      sharding if sharding is not None else jax.sharding.SingleDeviceSharding(jax.devices()[0])
    )
    abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=target), abstract
    )
    items: dict[str, Any] = {"state": ocp.args.StandardRestore(abstract)}
    has_history = (path / "history").is_dir()
    if has_history:
      items["history"] = ocp.args.JsonRestore()
    out = self._manager.restore(int(meta["step"]), args=ocp.args.Composite(**items))
    state = out["state"]
    if impl is not None:
      state = state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))
    history = train.History.from_dict(out["history"]) if has_history else None
    return Restored(state=state, history=history, metadata=meta)


def save(
  directory: str | os.PathLike,
  state: train.TrainState,
  *,
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  history: train.History | None = None,
) -> Path:
  """Save one checkpoint of ``state`` into ``directory``; see :class:`Checkpoints`."""
  with Checkpoints(directory, cell=cell, task=task, optimizer=optimizer) as ckpts:
    return ckpts.save(state, history)


def restore(
  directory: str | os.PathLike,
  *,
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  step: int | None = None,
  strict: bool = True,
  sharding: jax.sharding.Sharding | None = None,
) -> Restored:
  """Restore the latest (or ``step``'s) checkpoint in ``directory``; see :meth:`Checkpoints.restore`."""
  with Checkpoints(directory, cell=cell, task=task, optimizer=optimizer) as ckpts:
    return ckpts.restore(step, strict=strict, sharding=sharding)


def fit(
  cell: Cell,
  task: Task,
  *,
  directory: str | os.PathLike,
  key: PRNGKeyArray,
  steps: int,
  every: int,
  keep: int | None = None,
  batch_size: int = 64,
  learning_rate: float | optax.Schedule = 1e-3,
  clip_norm: float | None = 1.0,
  optimizer: str | optax.GradientTransformation | None = None,
  callback: Callable[[train.TrainState, train.History], bool | None] | None = None,
  **fit_kwargs: Any,
) -> train.TrainResult:
  """:func:`gatejax.train.fit` that resumes from ``directory`` and saves every ``every`` steps.

  Start a run, or continue it after an interruption with the same call: the result
  equals an uninterrupted run's bit for bit. The final state is saved too. The key,
  batch size and optimizer settings are stored as the run's description, so resuming
  with other ones fails instead of silently mixing two runs.

  Args:
    cell, task, key, steps, batch_size, learning_rate, clip_norm, optimizer, callback:
      as in :func:`gatejax.train.fit`.
    directory: the run's checkpoint directory.
    every: save every this many steps.
    keep: keep only the latest ``keep`` checkpoints.
    **fit_kwargs: passed on to :func:`gatejax.train.fit` (``eval_every``, ``progress``, ...).

  Example:
    >>> import tempfile, jax, gatejax as gj
    >>> from gatejax import checkpoint, tasks
    >>> run = tempfile.mkdtemp()
    >>> first = checkpoint.fit(gj.gru(4), tasks.adding(5), directory=run, key=jax.random.key(0),
    ...                        steps=4, every=2, batch_size=8, progress=False)
    >>> longer = checkpoint.fit(gj.gru(4), tasks.adding(5), directory=run, key=jax.random.key(0),
    ...                         steps=6, every=2, batch_size=8, progress=False)
    >>> longer.history.step     # steps 0-3 restored, 4-5 trained
    [0, 1, 2, 3, 4, 5]
  """
  if isinstance(optimizer, optax.GradientTransformation):
    opt, opt_desc = optimizer, "custom"
  elif optimizer is None or isinstance(optimizer, str):
    opt = train.make_optimizer(
      learning_rate=learning_rate, clip_norm=clip_norm, optimizer=optimizer or "adam"
    )
    opt_desc = {
      "optimizer": optimizer or "adam",
      "learning_rate": learning_rate if isinstance(learning_rate, float | int) else "schedule",
      "clip_norm": clip_norm,
    }
  else:
    raise TypeError(f"optimizer must be a name, an optax transformation or None, got {optimizer!r}")
  typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  key_data = np.asarray(jax.random.key_data(key) if typed else key).tolist()
  run = {"key": key_data, "batch_size": batch_size, "optimizer": opt_desc}
  with Checkpoints(
    directory, cell=cell, task=task, optimizer=opt, every=every, keep=keep, run=run
  ) as ckpts:
    state = history = None
    if ckpts.latest_step() is not None:
      state, history, _ = ckpts.restore()

    def on_step(state: train.TrainState, history: train.History) -> bool:
      ckpts(state, history)
      return bool(callback(state, history)) if callback is not None else False

    result = train.fit(
      cell,
      task,
      key=key,
      steps=steps,
      batch_size=batch_size,
      optimizer=opt,
      state=state,
      history=history,
      callback=on_step,
      **fit_kwargs,
    )
    ckpts.save(result.state, result.history)
    return result
