"""How :mod:`gatejax.train.checkpoints` calls orbax: imported on first use, its event loops settled.

orbax is an optional dependency, imported only when a checkpoint is written or read, so
``import gatejax`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

# How long a failed orbax call may wait for its other reads and writes to finish.
_SETTLE_SECONDS = 60.0

_T = TypeVar("_T")


def load() -> Any:
  try:
    import orbax.checkpoint as ocp
  except ImportError as e:
    raise ImportError(
      "gatejax.train's checkpoints need orbax-checkpoint, an optional dependency: "
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
def settled() -> Iterator[None]:
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


def first_line(error: BaseException) -> str:
  # tensorstore's messages go on with the whole JSON spec of the store.
  text = str(error).strip().partition("\n")[0].partition(" [tensorstore_spec=")[0]
  return f"{type(error).__name__}: {text}"[:500]


def manager(directory: Path, keep: int | None) -> Any:
  """The orbax ``CheckpointManager`` of a run's directory: one item per part of a checkpoint."""
  ocp = load()
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
