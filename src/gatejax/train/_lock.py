"""The lock file of a checkpoint directory: one process at a time, taken over from the dead.

An advisory ``flock`` on ``<directory>/.gatejax-lock``, whose content names the holder
(host, process id, start time, command). The kernel drops the lock when its process
exits, however it exits, so the file a killed process leaves behind is free to take. A
clean release deletes the file while still holding the lock; a process that locked the
file just before it was deleted sees that the path no longer leads to what it locked,
and tries again. Re-entrant within one process (a run's checkpoints and a restore beside
them). Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

NAME = ".gatejax-lock"

# The directories this process holds: resolved path -> [lock file, number of holders].
_held: dict[Path, list[Any]] = {}
_guard = threading.Lock()


def _describe_self() -> str:
  command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200] if sys.argv else ""
  since = time.strftime("%Y-%m-%d %H:%M:%S")
  who = {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "command": command}
  return json.dumps(who) + "\n"


def _holder(text: str) -> str:
  try:
    who = json.loads(text)
    return f"process {who['pid']} on host {who['host']} (since {who['since']}: {who['command']})"
  except (ValueError, KeyError, TypeError):
    return "another process"  # it locked the file and has not written it yet


def acquire(directory: Path) -> str | None:
  """Lock ``directory`` for this process; ``None``, or the holder's description when it is taken."""
  try:
    import fcntl
  except ImportError:
    return None
  key = directory.resolve()  # one entry however the directory is spelled
  path = directory / NAME
  with _guard:
    if key in _held:
      _held[key][1] += 1
      return None
    while True:
      # "a+": opening must not erase the holder's description before the lock is ours.
      file = path.open("a+")
      try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        file.seek(0)
        holder = _holder(file.read().strip())
        file.close()
        return holder
      except BaseException:
        file.close()
        raise
      try:
        same = os.path.samestat(os.fstat(file.fileno()), os.stat(path))
      except FileNotFoundError:
        same = False
      if same:
        break
      file.close()  # released and deleted meanwhile: lock the file that is there now
    file.seek(0)
    file.truncate()
    file.write(_describe_self())
    file.flush()
    _held[key] = [file, 1]
    return None


def release(directory: Path) -> None:
  """Give back one hold of ``directory``'s lock; the last one deletes the file and unlocks."""
  key = directory.resolve()
  with _guard:
    held = _held.get(key)
    if held is None:
      return
    held[1] -= 1
    if held[1]:
      return
    del _held[key]
    file = held[0]
    try:
      (directory / NAME).unlink(missing_ok=True)
    finally:
      file.close()  # closing the last descriptor releases the flock
