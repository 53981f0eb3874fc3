"""^C in the ``gatejax`` program: one line on stderr and exit status 130, at any moment.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread is, and
under JAX that place is often one that cannot take it: a garbage-collection callback of
XLA's, which swallows it (the run went on and exited 0), or the middle of a compilation,
where unwinding printed some fifty lines of traceback and could end in a segmentation
fault. So the program does not raise: while :func:`guarded` runs the command, SIGINT runs
the cleanups registered with :func:`on_interrupt`, writes ``gatejax: interrupted`` and
ends the process with ``os._exit(130)`` (130 = 128 + SIGINT, what a shell reports).

It acts at once even while the main thread is inside XLA (compiling, running), where a
Python handler would wait until the call returns: the C-level handler writes the signal
to a pipe (``signal.set_wakeup_fd``) and a thread blocked on it does the exit.

Only the program uses it (:func:`gatejax.cli.entry`); :func:`gatejax.cli.main`, called
from Python, leaves the caller's handling of ^C alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MESSAGE", "STATUS", "guarded", "on_interrupt"]

#: The exit status after ^C, 128 + SIGINT, as a shell reports a process that SIGINT ended.
STATUS = 128 + signal.SIGINT
#: The one line written to stderr.
MESSAGE = "gatejax: interrupted"

_cleanups: list[Callable[[], None]] = []
# Taken by whichever of the handler and the watching thread comes first; the other waits
# for the exit, so nothing the command does runs alongside the cleanups.
_exiting = threading.Lock()


def on_interrupt(cleanup: Callable[[], None]) -> None:
  """Run ``cleanup`` before the process ends on ^C (for the rest of :func:`guarded`'s call).

  A cleanup must be quick and must not raise; one that raises is skipped.
  """
  _cleanups.append(cleanup)


def _exit() -> None:
  _exiting.acquire()
  for cleanup in reversed(_cleanups):
    # Ending anyway: a failed cleanup must not keep the process alive.
    with contextlib.suppress(Exception):
      cleanup()
  os.write(sys.stderr.fileno(), f"{MESSAGE}\n".encode())
  os._exit(STATUS)


def _on_signal(signum: int, frame: Any) -> None:
  _exit()


def _watch(fd: int) -> None:
  """Wait on the wakeup pipe; end the process when SIGINT's number arrives, return at EOF."""
  while data := os.read(fd, 64):
    if signal.SIGINT in data:
      _exit()


def guarded(command: Callable[[], int]) -> int:
  """Run ``command()`` with ^C ending the process (one line, status 130); return its status.

  Must be called from the main thread. The previous SIGINT handler and wakeup descriptor
  are restored when ``command`` returns or raises.
  """
  read, write = os.pipe()
  os.set_blocking(write, False)
  previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
  previous = signal.signal(signal.SIGINT, _on_signal)
  watcher = threading.Thread(target=_watch, args=(read,), name="gatejax-interrupt", daemon=True)
  watcher.start()
  try:
    return command()
  finally:
    signal.signal(signal.SIGINT, previous)
    signal.set_wakeup_fd(previous_fd)
    os.close(write)  # the watcher reads EOF and returns
    watcher.join()
    os.close(read)
    _cleanups.clear()
