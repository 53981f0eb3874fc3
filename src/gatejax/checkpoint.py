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
  name, length and sizes), the optimizer (see below), then every stored array's shape and
  dtype against the state they must fill, and names what differs. Nothing is reshaped,
  padded or truncated.
* **Interrupted saves never restore.** orbax writes a step into
  ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only once every item is on
  disk (on object stores without an atomic rename, it writes ``commit_success.txt`` last).
  Restoring takes only finalized steps, and also refuses a step directory that lacks
  any of its items.
* **A re-save never loses the step it replaces.** Saving a step that is already saved
  writes the replacement in full under ``.gatejax-staging/`` first, then swaps it in by
  two renames; a process killed between them leaves the old step as
  ``.gatejax-staging/<step>.replaced``, which opening the directory puts back. At every
  instant a finalized checkpoint of the step is on disk.
* **Damage is named.** A checkpoint whose files are missing, truncated or renamed raises
  :class:`CheckpointError` naming the step and the item (``state``, ``history`` or
  ``gatejax``), never an orbax internal error.

What the optimizer check detects: a checkpoint stores a description of the optax
transformation, read from its closures (:func:`describe_optimizer`): the qualified name of
every function it is built from (``scale_by_adam``, ``clip_by_global_norm``, schedules, a
user's own functions) and every number, string, flag and small array they close over or
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

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import threading
import types
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

import gatejax
from gatejax import _validate, protocol, train
from gatejax.cells import Cell
from gatejax.tasks import Task

__all__ = [
  "CheckpointError",
  "Checkpoints",
  "Restored",
  "describe",
  "describe_optimizer",
  "fit",
  "restore",
  "save",
]

FORMAT = "gatejax.checkpoint/1"
# Where a re-save writes its replacement before swapping it in (see the module docstring).
_STAGING = ".gatejax-staging"
_ASIDE = ".replaced"
# How long a failed orbax call may wait for its other reads and writes to finish.
_SETTLE_SECONDS = 60.0

_T = TypeVar("_T")


def _orbax() -> Any:
  try:
    import orbax.checkpoint as ocp
  except ImportError as e:
    raise ImportError(
      "gatejax.checkpoint needs orbax-checkpoint, an optional dependency: "
      "pip install 'gatejax[checkpoint]'"
    ) from e
  return ocp


def _run_and_settle(coro: Coroutine[Any, Any, _T]) -> _T:
  """orbax's ``_run_sync_via_new_loop``, but the loop finishes its other tasks before closing.

  orbax runs each read or write in a fresh event loop and closes it as soon as the main
  coroutine returns. When one array's read fails (a damaged checkpoint), the gather raises
  while the other arrays' tensorstore reads are still in flight; they complete later into
  the closed loop, and tensorstore prints one ``RuntimeError: Event loop is closed``
  traceback per array (and asyncio logs "exception was never retrieved"). Waiting for them
  here, and taking their secondary errors, closes the loop with nothing left to call it.
  """
  loop = asyncio.new_event_loop()
  try:
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(coro)
  finally:
    try:
      pending = asyncio.all_tasks(loop)
      if pending:
        done, _ = loop.run_until_complete(asyncio.wait(pending, timeout=_SETTLE_SECONDS))
        for task in done:
          if not task.cancelled():
            task.exception()  # the first failure is the one raised
    finally:
      asyncio.set_event_loop(None)
      loop.close()


@contextlib.contextmanager
def _settled() -> Iterator[None]:
  """Run orbax's synchronous calls through :func:`_run_and_settle` inside this block.

  Scoped to gatejax's own orbax calls, and a no-op on an orbax without the hook (the
  tracebacks then come back, nothing else changes). When the block fails, it also waits
  for the threads orbax started in it (a save's commit threads write on after one of its
  items failed), so that cleaning up after a failed save does not race with them.
  """
  before = set(threading.enumerate())
  asyncio_utils: Any = None
  with contextlib.suppress(ImportError):
    from orbax.checkpoint._src import asyncio_utils
  original = getattr(asyncio_utils, "_run_sync_via_new_loop", None)
  patch = original is not None and original is not _run_and_settle
  if patch:
    asyncio_utils._run_sync_via_new_loop = _run_and_settle
  try:
    yield
  except BaseException:
    for thread in set(threading.enumerate()) - before:
      if type(thread).__module__.startswith("orbax."):
        thread.join(timeout=_SETTLE_SECONDS)
    raise
  finally:
    if patch:
      asyncio_utils._run_sync_via_new_loop = original


class CheckpointError(ValueError):
  """A checkpoint does not fit what it is restored into, is incomplete or is damaged."""


def _where(path: Path, item: str) -> str:
  """How a message names a checkpoint's step and item."""
  return f"checkpoint step {path.name} in {path.parent}, item {item!r}"


def _first_line(error: BaseException) -> str:
  # tensorstore's messages go on with the whole JSON spec of the store.
  text = str(error).strip().partition("\n")[0].partition(" [tensorstore_spec=")[0]
  return f"{type(error).__name__}: {text}"[:500]


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
  protocol.require(cell)
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


_MAX_ENTRIES = 2000
_MAX_DEPTH = 24


def _describe_value(value: Any, path: str, out: dict[str, Any], seen: frozenset[int]) -> None:
  """Add ``path: description`` entries for ``value`` and what it closes over to ``out``."""
  if len(out) >= _MAX_ENTRIES:
    out["..."] = "truncated"
    return
  if value is None or isinstance(value, bool | int | str):
    out[path] = value
    return
  if isinstance(value, float):
    out[path] = value if math.isfinite(value) else repr(value)  # strict JSON
    return
  if isinstance(value, np.ndarray | np.generic | jax.Array):
    a = np.asarray(jax.device_get(value))
    text = repr(a.tolist()) if a.size <= 16 else hashlib.sha256(a.tobytes()).hexdigest()[:16]
    out[path] = f"{a.dtype}{list(a.shape)} {text}"
    return
  if isinstance(value, type | np.dtype):
    out[path] = str(getattr(value, "__qualname__", value))
    return
  if id(value) in seen or path.count(".") > _MAX_DEPTH:
    out[path] = "<recursion>"
    return
  seen = seen | {id(value)}
  if isinstance(value, functools.partial):
    _describe_value(value.func, f"{path}.func", out, seen)
    for i, arg in enumerate(value.args):
      _describe_value(arg, f"{path}.args[{i}]", out, seen)
    for name, arg in sorted(value.keywords.items()):
      _describe_value(arg, f"{path}.{name}", out, seen)
  elif isinstance(value, types.MethodType):
    _describe_value(value.__func__, path, out, seen)
  elif isinstance(value, types.FunctionType):
    # The name, not the module: a run resumed from a notebook or a script is the same run.
    out[f"{path}.fn"] = value.__qualname__
    for name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=True):
      try:
        content = cell.cell_contents
      except ValueError:  # a closure variable not yet assigned
        continue
      _describe_value(content, f"{path}.{name}", out, seen)
    for i, default in enumerate(value.__defaults__ or ()):
      _describe_value(default, f"{path}.defaults[{i}]", out, seen)
    for name, default in sorted((value.__kwdefaults__ or {}).items()):
      _describe_value(default, f"{path}.{name}", out, seen)
  elif isinstance(value, tuple) and hasattr(value, "_fields"):
    named: Any = value
    out[f"{path}.type"] = type(value).__qualname__
    for name in named._fields:
      _describe_value(getattr(value, name), f"{path}.{name}", out, seen)
  elif dataclasses.is_dataclass(value) and not isinstance(value, type):
    out[f"{path}.type"] = type(value).__qualname__
    for field in dataclasses.fields(value):
      _describe_value(getattr(value, field.name), f"{path}.{field.name}", out, seen)
  elif isinstance(value, list | tuple):
    for i, item in enumerate(value):
      _describe_value(item, f"{path}[{i}]", out, seen)
  elif isinstance(value, dict):
    for key in sorted(value, key=str):
      _describe_value(value[key], f"{path}[{str(key)!r}]", out, seen)
  else:
    # Opaque (a jitted function, a C object): its type only; its repr may hold an address.
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    out[path] = f"<{type(value).__qualname__}{' ' + name if isinstance(name, str) else ''}>"


def describe_optimizer(optimizer: optax.GradientTransformation) -> dict[str, Any]:
  """A JSON description of an optax transformation that two equal transformations share.

  Read from the closures of ``optimizer.init`` and ``optimizer.update``: each function by
  its qualified name, each number, string, flag and small array it closes over or takes
  as a default by its value (larger arrays by a hash). Checkpoints store it and restoring
  compares it, so resuming with another optimizer, or the same with other
  hyperparameters, is refused. The module docstring says what it cannot see.

  Example:
    >>> import optax
    >>> from gatejax import checkpoint
    >>> a = checkpoint.describe_optimizer(optax.adam(1e-3))
    >>> b = checkpoint.describe_optimizer(optax.adam(1e-2))
    >>> {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    {'update.update_fns[1].tx.update.step_size': (-0.001, -0.01)}
  """
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r:.80}")
  out: dict[str, Any] = {"type": type(optimizer).__qualname__}
  for name in ("init", "update"):
    _describe_value(getattr(optimizer, name), name, out, frozenset())
  return out


def _optimizer_mismatches(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
  absent = object()

  def show(value: Any) -> str:
    return "nothing" if value is absent else repr(value)

  keys = sorted(set(stored) | set(wanted))
  differ = [k for k in keys if stored.get(k, absent) != wanted.get(k, absent)]
  out = [
    f"optimizer {k}: checkpoint has {show(stored.get(k, absent))}, "
    f"expected {show(wanted.get(k, absent))}"
    for k in differ[:10]
  ]
  if len(differ) > 10:
    out.append(f"optimizer: {len(differ) - 10} more differences")
  return out


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


def _check_tree(stored: Any, abstract: Any, where: str) -> None:
  """Every array the state needs is stored with its shape and dtype, and nothing else is stored."""
  ocp = _orbax()
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
    self.description = describe(cell, task)
    self.optimizer_description = describe_optimizer(optimizer)
    for name, value in (("every", every), ("keep", keep)):
      if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    self.cell, self.task, self.optimizer = cell, task, optimizer
    self.every, self.run = every, None if run is None else json.loads(json.dumps(run))
    self.directory = Path(directory).absolute()
    _on_primary(self._recover, "gatejax.checkpoint.recover")
    self._manager = _manager(self.directory, keep)

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

    A step that is already saved is replaced without ever being absent: the replacement
    is written and finalized under ``.gatejax-staging/`` first, then swapped in (the old
    step is renamed aside, the new one into place, the old one deleted). A failed or
    interrupted save leaves the previous checkpoint of the step as it was.
    """
    ocp = _orbax()

    if not isinstance(state, train.TrainState):
      raise TypeError(f"state must be a train.TrainState, got {type(state).__name__}")
    if history is not None and not isinstance(history, train.History):
      raise TypeError(f"history must be a train.History or None, got {type(history).__name__}")
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
      with _settled():
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
      staged = _manager(staging, None)
      try:
        with _settled():
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
      FileNotFoundError: no finalized checkpoint (of that step).
      CheckpointError: the checkpoint belongs to another cell, task, optimizer or run, or
        is incomplete or damaged; the message names the step, the item and every
        difference.
    """
    ocp = _orbax()

    path = self._step_path(step)
    step = int(path.name)
    meta = self._read_metadata(path)
    problems = _mismatches(meta, self.description, strict)
    if strict and self.run is not None and meta.get("run") != self.run:
      problems.append(f"run: checkpoint has {meta.get('run')!r}, expected {self.run!r}")
    _refuse(path, problems)
    impl = meta.get("key_impl")
    abstract = _abstract_state(self.cell, self.task, self.optimizer, impl)
    # The arrays first: another optimizer's state layout is the plainer message.
    _check_tree(self._state_metadata(path), abstract, _where(path, "state"))
    if strict and "optimizer" in meta:  # older checkpoints have no description to compare
      _refuse(path, _optimizer_mismatches(meta["optimizer"], self.optimizer_description))
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
      with _settled():
        out = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
    except Exception as e:
      raise CheckpointError(f"{_where(path, 'state')}: cannot be read: {_first_line(e)}") from e
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
      with _settled():
        found = self._manager.item_metadata(int(path.name))
    except Exception as e:
      raise CheckpointError(f"{where}: its metadata cannot be read: {_first_line(e)}") from e
    tree = getattr(found.get("state") if found is not None else None, "tree", None)
    if tree is None:
      raise CheckpointError(f"{where}: its metadata cannot be read")
    return tree

  def _read_history(self, path: Path, meta: Mapping[str, Any]) -> train.History | None:
    items = meta.get("items")
    if items is None:
      # Written before the items were recorded: a lost history looks like none saved.
      if not (path / "history").exists():
        return None
    elif "history" not in items:
      return None
    data = _read_json(path, "history")
    try:
      return train.History.from_dict(data)
    except (AttributeError, TypeError, ValueError) as e:
      raise CheckpointError(f"{_where(path, 'history')}: not a train.History: {e}") from e


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


def _manager(directory: Path, keep: int | None) -> Any:
  ocp = _orbax()
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
  return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


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


def _run_description(key: PRNGKeyArray, batch_size: int) -> dict[str, Any]:
  """What a run started from a directory records beyond its model: its key and batch size."""
  typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  key_data = np.asarray(jax.random.key_data(key) if typed else key).tolist()
  return {"key": key_data, "batch_size": batch_size}


def _for_fit(
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
    problems = _mismatches(checkpoints.description, describe(cell, task), strict=True)
    problems += _optimizer_mismatches(
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
      run=_run_description(key, batch_size),
    )
  raise TypeError(
    f"checkpoints must be a gatejax.checkpoint.Checkpoints or a directory, got {checkpoints!r:.80}"
  )


def _resume(
  checkpoints: Checkpoints, steps: int, *, sharding: jax.sharding.Sharding | None
) -> tuple[train.TrainState | None, train.History | None]:
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
  **fit_kwargs: Any,
) -> train.TrainResult:
  """:func:`gatejax.train.fit` that resumes from ``directory`` and saves every ``every`` steps.

  A thin wrapper over ``train.fit(..., checkpoints=Checkpoints(directory, ..., every=every,
  keep=keep))``: start a run, or continue it after an interruption with the same call; the
  result equals an uninterrupted run's bit for bit. The final state is saved too. The key
  and batch size are stored as the run's description (the optimizer is described in every
  checkpoint anyway), so resuming with other ones fails instead of silently mixing two runs.

  Args:
    cell, task, key, steps, batch_size, learning_rate, clip_norm, optimizer:
      as in :func:`gatejax.train.fit`.
    directory: the run's checkpoint directory.
    every: save every this many steps.
    keep: keep only the latest ``keep`` checkpoints.
    **fit_kwargs: passed on to :func:`gatejax.train.fit` (``eval_every``, ``progress``,
      ``mesh``, ``callback``, ...).

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
  opt = train.resolve_optimizer(optimizer, learning_rate=learning_rate, clip_norm=clip_norm)
  with Checkpoints(
    directory,
    cell=cell,
    task=task,
    optimizer=opt,
    every=every,
    keep=keep,
    run=_run_description(key, batch_size),
  ) as ckpts:
    return train.fit(
      cell,
      task,
      key=key,
      steps=steps,
      batch_size=batch_size,
      optimizer=opt,
      checkpoints=ckpts,
      **fit_kwargs,
    )
