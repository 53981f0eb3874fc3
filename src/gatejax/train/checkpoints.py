r"""Checkpoints of :mod:`gatejax.train` runs with orbax: save, restore, resume bit for bit.

A checkpoint directory holds one sub-directory per saved step, written by an orbax
``CheckpointManager``::

  run/
    .gatejax-lock  names the process that has the directory open (see "One run")
    120/
      state/     the TrainState arrays: step, params, optimizer state, data key
      history/   the History, JSON
      gatejax/   what the state belongs to, JSON: the cell's configuration
                 (protocol.config), input size, task, PRNG implementation, the optimizer's
                 description and the caller's run description

Because a training step draws its batch from ``fold_in(state.key, state.step)``, the
:class:`~gatejax.train.TrainState` is all a run depends on: restoring it and calling
:func:`gatejax.train.fit` again gives the uninterrupted run's parameters, optimizer state
and history bit for bit (only ``history.seconds`` differs). ``fit(..., checkpoints=)``
does exactly that in one call: it resumes from the latest checkpoint if there is one and
saves every ``every`` steps.

Safety:

* **Mismatches fail loudly.** Restoring checks the stored description against the cell
  and task given (the cell's type or kind, hidden size, input size and every option it
  records, :func:`gatejax.protocol.config`; task name, length and sizes), the optimizer
  (see below), then every stored array's shape and dtype against the state they must
  fill, and names what differs. Nothing is reshaped, padded or truncated. Options that
  only shape ``init`` (``gatejax.protocol.init_only``, e.g. ``forget_bias``) may
  differ: a restored state has its own parameters.
* **One run per directory.** Opening a directory takes its lock file ``.gatejax-lock``
  (an advisory ``flock`` held until :meth:`Checkpoints.close`, the file naming the host,
  process and command); a second process that opens it, to save or to restore, gets a
  :class:`CheckpointError` naming the first. Two runs saving into one directory would
  delete each other's unfinished saves. The lock dies with its process, so the lock file
  a killed run leaves is taken over; a clean close deletes it. The processes of one
  multi-process run share the directory: process 0 takes the lock. (Without ``fcntl``,
  on Windows, nothing is locked.)
* **Interrupted saves never restore.** orbax writes a step into
  ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only once every item is on
  disk (on object stores without an atomic rename, it writes ``commit_success.txt`` last).
  Restoring takes only finalized steps, and also refuses a step directory that lacks
  any of its items. Opening a directory deletes the unfinished saves (orbax's cleanup);
  when they are all it holds, a ``UserWarning`` names them first, since a run that
  resumes there starts from step 0.
* **A re-save never loses the step it replaces.** Saving a step that is already saved
  writes the replacement in full under ``.gatejax-staging/`` first, then swaps it in by
  two renames; a process killed between them leaves the old step as
  ``.gatejax-staging/<step>.replaced``, which opening the directory puts back. At every
  instant a finalized checkpoint of the step is on disk.
* **Damage is named.** A checkpoint whose files are missing, truncated or renamed raises
  :class:`CheckpointError` naming the step and the item (``state``, ``history`` or
  ``gatejax``), never an orbax internal error; so does a directory that is a file.

What the optimizer check detects: a checkpoint stores a description of the optax
transformation, read from its closures (:func:`~gatejax.train.describe_optimizer`): the
qualified name of every function it is built from (``scale_by_adam``,
``clip_by_global_norm``, schedules, a user's own functions) and every number, string, flag and small array they close over or
take as defaults (learning rates, ``b1``, ``b2``, ``eps``, weight decay, clipping norms,
schedule constants, ``optax.inject_hyperparams`` values). Restoring with another
transformation, or the same one with other hyperparameters, fails and names the values
that differ. Not detected: a change in a function's code under the same name, values a
function reads from global variables or from the attributes of objects other than
NamedTuples, dataclasses, partials, lists and dicts, and anything opaque to Python (a
jitted function's own closure). ``strict=False`` skips this check.

orbax is imported only when a checkpoint is written or read, so ``import gatejax`` stays
light.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

import gatejax
import gatejax.train._lock as _lock_room
from gatejax import _validate
from gatejax.cells import Cell
from gatejax.tasks import Task
from gatejax.train._orbax import first_line, manager, settled
from gatejax.train._orbax import load as load_orbax
from gatejax.train.descriptions import (
  describe,
  describe_optimizer,
  init_only_of,
  mismatches,
  optimizer_mismatches,
  run_description,
)
from gatejax.train.history import History
from gatejax.train.state import TrainState, init_state

__all__ = ["CheckpointError", "Checkpoints", "Restored", "restore", "save"]

FORMAT = "gatejax.checkpoint/1"
# Where a re-save writes its replacement before swapping it in (see the module docstring).
_STAGING = ".gatejax-staging"
_ASIDE = ".replaced"
# What orbax names an unfinished save.
_UNFINISHED = ".orbax-checkpoint-tmp"


class CheckpointError(ValueError):
  """A checkpoint that does not fit its run, is incomplete or damaged, or an unusable directory.

  Unusable: a file, or a directory in use by another process.
  """


class _NotFound(CheckpointError, FileNotFoundError):
  """No finalized checkpoint (of a step): a :class:`CheckpointError` and a ``FileNotFoundError``."""


def _where(path: Path, item: str) -> str:
  """How a message names a checkpoint's step and item."""
  return f"checkpoint step {path.name} in {path.parent}, item {item!r}"


class Restored(NamedTuple):
  """What :func:`restore` returns.

  Attributes:
    state: the :class:`~gatejax.train.TrainState`.
    history: the :class:`~gatejax.train.History` saved with it, or ``None``.
    metadata: the stored description (see :func:`~gatejax.train.describe`), plus ``"step"``
      and ``"run"``.
  """

  state: TrainState
  history: History | None
  metadata: dict[str, Any]


def _storable(state: TrainState) -> tuple[TrainState, str | None]:
  """The state with its key as raw key data (what orbax stores), and the key's PRNG implementation."""
  key = state.key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return state._replace(key=jax.random.key_data(key)), str(jax.random.key_impl(key))
  return state, None


def _abstract_state(
  cell: Cell, task: Task, optimizer: optax.GradientTransformation, impl: str | None
) -> TrainState:
  """Shapes and dtypes of the storable state of a fresh run (no arrays are computed)."""

  def fresh() -> TrainState:
    key = jax.random.key(0) if impl is None else jax.random.key(0, impl=impl)
    state = init_state(cell, task, key, optimizer)
    if impl is None:
      state = state._replace(key=jax.random.key_data(state.key))
    return _storable(state)[0]

  return jax.eval_shape(fresh)


def _check_tree(stored: Any, abstract: Any, where: str) -> None:
  """Every array the state needs is stored with its shape and dtype, and nothing else is stored."""
  ocp = load_orbax()
  # orbax describes each stored array by an ArrayMetadata (shape, dtype, and more).
  stored = jax.tree.map(
    lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype),
    stored,
    is_leaf=lambda x: isinstance(x, ocp.metadata.ArrayMetadata),
  )

  def show(a: jax.ShapeDtypeStruct) -> str:
    return f"{np.dtype(a.dtype).name}{list(a.shape)}"

  problems = []
  for m in _validate.mismatches(abstract, stored, exact_dtypes=True):
    name = _validate.dotted(m.path)
    if m.found is None:
      problems.append(f"{name}: missing from the checkpoint")
    elif m.expected is None:
      problems.append(f"{name}: in the checkpoint but not in the state")
    else:
      problems.append(f"{name}: checkpoint has {show(m.found)}, expected {show(m.expected)}")
  if problems:
    raise CheckpointError(
      f"{where}: the checkpoint's arrays do not fit the training state (another optimizer, "
      "cell or task?):\n  " + "\n  ".join(problems[:20])
    )


def _on_primary(action: Callable[[], None], name: str) -> None:
  """Run ``action`` (a change to the directory's files) in one process, the others waiting.

  Every process of a multi-process run opens and saves the same directory (orbax then
  writes each array once); a rename done by each of them would race. With one process
  this is ``action()``.
  """
  if jax.process_count() == 1:
    action()
    return
  from jax.experimental import multihost_utils

  try:
    if jax.process_index() == 0:
      action()
  finally:
    # Also after a failure, so that the other processes are not left waiting at the barrier.
    multihost_utils.sync_global_devices(name)


def _lock(directory: Path) -> None:
  holder = _lock_room.acquire(directory)
  if holder is not None:
    raise CheckpointError(
      f"checkpoint directory {directory} is in use by {holder}: two runs saving into one "
      "directory delete each other's unfinished saves. Wait for that run to end, or use "
      f"another directory (the lock, {directory / _lock_room.NAME}, is released when that "
      "process exits)"
    )


def _directory(directory: str | os.PathLike) -> Path:
  """``directory`` as an absolute path, created if missing; a clear error where it is a file."""
  path = Path(directory).absolute()
  if path.exists() and not path.is_dir():
    raise CheckpointError(f"checkpoint directory {path} is a file, not a directory")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError):
    file = next((p for p in path.parents if p.exists() and not p.is_dir()), "a parent")
    raise CheckpointError(
      f"checkpoint directory {path} cannot be created: {file} is a file"
    ) from None
  return path


def _warn_if_only_unfinished(directory: Path) -> None:
  """Name the unfinished saves of a directory that holds nothing else, before orbax deletes them."""
  names = sorted(p.name for p in directory.iterdir())
  unfinished = [n for n in names if _UNFINISHED in n]
  if unfinished and not any(n.isdigit() for n in names):
    shown = ", ".join(unfinished[:5]) + (", ..." if len(unfinished) > 5 else "")
    warnings.warn(
      f"checkpoint directory {directory} holds no finalized checkpoint, only "
      f"{len(unfinished)} unfinished save(s) ({shown}): saves interrupted before orbax "
      "finalized them, which cannot be restored. They are deleted now; a run resumed "
      "here starts from step 0",
      UserWarning,
      stacklevel=5,
    )


class Checkpoints:
  """The checkpoints of one training run in ``directory``, one per saved step.

  A thin layer over an orbax ``CheckpointManager`` (synchronous saves). Pass it as
  ``checkpoints=`` to :func:`gatejax.train.fit` to save every ``every`` steps and resume
  from the latest, or use :meth:`save` and :meth:`restore` directly.

  Opening takes the directory's lock (see the module docstring) until :meth:`close`, or
  the end of a ``with`` block: no other process can open the directory meanwhile.

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
    >>> from gatejax import tasks, train
    >>> cell, task, opt = gj.gru(4), tasks.adding(5), train.make_optimizer()
    >>> state = train.init_state(cell, task, jax.random.key(0), opt)
    >>> with train.Checkpoints(tempfile.mkdtemp(), cell=cell, task=task, optimizer=opt) as ckpts:
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
    self.description = describe(cell, task)
    self.optimizer_description = describe_optimizer(optimizer)
    for name, value in (("every", every), ("keep", keep)):
      if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    self.cell, self.task, self.optimizer = cell, task, optimizer
    self.every, self.run = every, None if run is None else json.loads(json.dumps(run))
    self.directory = _directory(directory)
    self._locked = False
    _on_primary(self._open, "gatejax.checkpoint.recover")
    try:
      self._manager = manager(self.directory, keep)
    except BaseException:
      self._release()
      raise

  def _open(self) -> None:
    """Lock the directory, then look at it and repair it (process 0 of a run does this)."""
    _lock(self.directory)
    self._locked = True
    try:
      self._recover()
      _warn_if_only_unfinished(self.directory)
    except BaseException:
      self._release()
      raise

  def _release(self) -> None:
    if self._locked:
      self._locked = False
      _lock_room.release(self.directory)

  def _recover(self) -> None:
    """Finish or undo a re-save that a killed process left half done (see :meth:`save`)."""
    staging = self.directory / _STAGING
    if not staging.is_dir():
      return
    for aside in staging.glob(f"*{_ASIDE}"):
      target = self.directory / aside.name.removesuffix(_ASIDE)
      if target.exists():  # the replacement was swapped in
        shutil.rmtree(aside)
      else:  # killed between the two renames: the old step goes back
        os.replace(aside, target)
    # What is left is a replacement that was never swapped in.
    shutil.rmtree(staging, ignore_errors=True)

  # -- lifecycle ---------------------------------------------------------------------

  def close(self) -> None:
    """Release orbax's resources and the directory's lock (also on leaving a ``with`` block)."""
    try:
      self._manager.close()
    finally:
      self._release()

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

  def save(self, state: TrainState, history: History | None = None) -> Path:
    """Save ``state`` (and ``history``) as the checkpoint of step ``state.step``; return its path.

    A step that is already saved is replaced without ever being absent: the replacement
    is written and finalized under ``.gatejax-staging/`` first, then swapped in (the old
    step is renamed aside, the new one into place, the old one deleted). A failed or
    interrupted save leaves the previous checkpoint of the step as it was.
    """
    ocp = load_orbax()

    if not isinstance(state, TrainState):
      raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    if history is not None and not isinstance(history, History):
      raise TypeError(f"history must be a History or None, got {type(history).__name__}")
    step = int(jax.device_get(state.step))
    path = self.directory / str(step)
    tree, impl = _storable(state)
    _check_tree(
      jax.eval_shape(lambda: tree),
      _abstract_state(self.cell, self.task, self.optimizer, impl),
      f"saving step {step} to {self.directory}",
    )
    meta = {
      "format": FORMAT,
      "gatejax_version": gatejax.__version__,
      "step": step,
      "items": ["state", "gatejax"] + ([] if history is None else ["history"]),
      **self.description,
      "optimizer": self.optimizer_description,
      "key_impl": impl,
      "run": self.run,
    }
    items: dict[str, Any] = {
      "state": ocp.args.StandardSave(tree),
      "gatejax": ocp.args.JsonSave(meta),
    }
    if history is not None:
      items["history"] = ocp.args.JsonSave(history.to_dict())
    args = ocp.args.Composite(**items)
    if step not in self.steps():
      with settled():
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()
      return path
    self._replace(step, args)
    return path

  def _replace(self, step: int, args: Any) -> None:
    staging = self.directory / _STAGING
    path, aside = self.directory / str(step), staging / f"{step}{_ASIDE}"

    def swap() -> None:
      # Both renames are atomic; between them the old step lies aside, whole, and
      # _recover puts it back if the process dies there.
      os.replace(path, aside)
      try:
        os.replace(staging / str(step), path)
      except BaseException:
        if not path.exists():
          os.replace(aside, path)
        raise

    try:
      staged = manager(staging, None)
      try:
        with settled():
          staged.save(step, args=args, force=True)
          staged.wait_until_finished()
      finally:
        staged.close()
      _on_primary(swap, f"gatejax.checkpoint.swap.{step}")
    finally:
      _on_primary(
        lambda: shutil.rmtree(staging, ignore_errors=True), f"gatejax.checkpoint.clean.{step}"
      )
      self._manager.reload()

  def __call__(self, state: TrainState, history: History) -> bool:
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
        raise _NotFound(f"no finalized checkpoint in {self.directory}")
      step = steps[-1]
    elif step not in steps:
      raise _NotFound(
        f"no finalized checkpoint of step {step} in {self.directory} (finalized: {steps})"
      )
    return self.directory / str(step)

  def _read_metadata(self, path: Path) -> dict[str, Any]:
    missing = [item for item in ("state", "gatejax") if not (path / item).is_dir()]
    if missing:
      raise CheckpointError(
        f"{_where(path, missing[0])}: the checkpoint is incomplete: it lacks {', '.join(missing)}"
      )
    meta = _read_json(path, "gatejax")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
      format_ = meta.get("format") if isinstance(meta, dict) else None
      raise CheckpointError(f"{_where(path, 'gatejax')}: not a {FORMAT} checkpoint ({format_!r})")
    if meta.get("step") != int(path.name):
      raise CheckpointError(
        f"{_where(path, 'gatejax')}: it records step {meta.get('step')!r}, not {path.name}; "
        "a step directory must keep its name (renamed or copied by hand?)"
      )
    for item in meta.get("items", ()):
      if not (path / item).is_dir():
        raise CheckpointError(
          f"{_where(path, item)}: the checkpoint is incomplete: it lacks {item}, which was saved"
        )
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
        convention, activation and gate names, task name and length, the optimizer's
        description, ``run``); with ``False`` only what the shapes depend on is checked.
      sharding: where to put every restored array, e.g. ``NamedSharding(mesh, P())`` to
        restore replicated over a mesh; default: this process's first device.

    Raises:
      CheckpointError: the checkpoint belongs to another cell, task, optimizer or run, or
        is incomplete or damaged; the message names the step, the item and every
        difference. Where there is no finalized checkpoint (of that step), the error is
        also a ``FileNotFoundError``.
    """
    ocp = load_orbax()

    path = self._step_path(step)
    step = int(path.name)
    meta = self._read_metadata(path)
    problems = mismatches(meta, self.description, strict, init_only_of(self.cell))
    if strict and self.run is not None and meta.get("run") != self.run:
      problems.append(f"run: checkpoint has {meta.get('run')!r}, expected {self.run!r}")
    _refuse(path, problems)
    impl = meta.get("key_impl")
    abstract = _abstract_state(self.cell, self.task, self.optimizer, impl)
    # The arrays first: another optimizer's state layout is the plainer message.
    _check_tree(self._state_metadata(path), abstract, _where(path, "state"))
    if strict and "optimizer" in meta:  # older checkpoints have no description to compare
      _refuse(path, optimizer_mismatches(meta["optimizer"], self.optimizer_description))
    history = self._read_history(path, meta)
    target = (
      sharding
      if sharding is not None
      else jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    )
    abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=target), abstract
    )
    try:
      with settled():
        out = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
    except Exception as e:
      raise CheckpointError(f"{_where(path, 'state')}: cannot be read: {first_line(e)}") from e
    state = out["state"]
    if int(jax.device_get(state.step)) != step:
      raise CheckpointError(
        f"{_where(path, 'state')}: holds the state of step {int(state.step)}, not {step}"
      )
    if impl is not None:
      state = state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))
    return Restored(state=state, history=history, metadata=meta)

  def _state_metadata(self, path: Path) -> Any:
    """The stored arrays' shapes and dtypes, read without reading the arrays."""
    where = _where(path, "state")
    if not (path / "state" / "_METADATA").is_file():
      raise CheckpointError(f"{where}: its _METADATA file, the list of stored arrays, is missing")
    try:
      with settled():
        found = self._manager.item_metadata(int(path.name))
    except Exception as e:
      raise CheckpointError(f"{where}: its metadata cannot be read: {first_line(e)}") from e
    tree = getattr(found.get("state") if found is not None else None, "tree", None)
    if tree is None:
      raise CheckpointError(f"{where}: its metadata cannot be read")
    return tree

  def _read_history(self, path: Path, meta: Mapping[str, Any]) -> History | None:
    items = meta.get("items")
    if items is None:
      # Written before the items were recorded: a lost history looks like none saved.
      if not (path / "history").exists():
        return None
    elif "history" not in items:
      return None
    data = _read_json(path, "history")
    try:
      return History.from_dict(data)
    except (AttributeError, TypeError, ValueError) as e:
      raise CheckpointError(f"{_where(path, 'history')}: not a History: {e}") from e


def _refuse(path: Path, problems: list[str]) -> None:
  if problems:
    raise CheckpointError(
      f"{_where(path, 'gatejax')}: the checkpoint belongs to another run:\n  "
      + "\n  ".join(problems)
    )


def _read_json(path: Path, item: str) -> Any:
  """The JSON document an orbax ``JsonSave`` wrote for ``item`` (its file is ``metadata``)."""
  file = path / item / "metadata"
  try:
    return json.loads(file.read_text())
  except FileNotFoundError as e:
    raise CheckpointError(f"{_where(path, item)}: its file {file.name} is missing") from e
  except (OSError, ValueError) as e:  # ValueError: truncated or not JSON, or not UTF-8
    raise CheckpointError(f"{_where(path, item)}: its file {file.name} is damaged: {e}") from e


def save(
  directory: str | os.PathLike,
  state: TrainState,
  *,
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  history: History | None = None,
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


def for_fit(
  checkpoints: Checkpoints | str | os.PathLike,
  *,
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  key: PRNGKeyArray,
  batch_size: int,
  steps: int,
) -> Checkpoints:
  """The :class:`Checkpoints` of :func:`gatejax.train.fit`'s ``checkpoints`` argument."""
  if isinstance(checkpoints, Checkpoints):
    problems = mismatches(
      checkpoints.description, describe(cell, task), strict=True, init_only=init_only_of(cell)
    )
    problems += optimizer_mismatches(
      checkpoints.optimizer_description, describe_optimizer(optimizer)
    )
    if problems:
      raise ValueError(
        "checkpoints were opened for another run than this one (the first value is theirs):\n  "
        + "\n  ".join(problems)
      )
    return checkpoints
  if isinstance(checkpoints, str | os.PathLike):
    return Checkpoints(
      checkpoints,
      cell=cell,
      task=task,
      optimizer=optimizer,
      every=max(1, steps // 10),
      run=run_description(key, batch_size),
    )
  raise TypeError(
    f"checkpoints must be a gatejax.train.Checkpoints or a directory, got {checkpoints!r:.80}"
  )


def resume(
  checkpoints: Checkpoints, steps: int, *, sharding: jax.sharding.Sharding | None
) -> tuple[TrainState | None, History | None]:
  """The state and history of the latest checkpoint, or ``(None, None)`` for a new run."""
  latest = checkpoints.latest_step()
  if latest is None:
    return None, None
  if latest > steps:
    raise CheckpointError(
      f"{_where(checkpoints.directory / str(latest), 'state')}: the run is at step {latest}, "
      f"beyond steps={steps} (the total length of the run); pass steps >= {latest} to "
      "continue it, or another directory for a shorter run"
    )
  state, history, _ = checkpoints.restore(sharding=sharding)
  return state, history
