"""A directory written whole or not at all: filled beside its place, then swapped in.

A reader of the target, or a process killed at any moment, sees the old contents or the
new ones, never a mix. The new contents are written into a staging directory next to the
target (same file system), which then takes the target's place in one step:
``renameat2(RENAME_EXCHANGE)`` on Linux exchanges the two directories atomically; where it
is missing, two renames leave a moment, between them, with the old contents moved aside
under the staging name and the new ones not yet in place.

Example:
  >>> import tempfile
  >>> from pathlib import Path
  >>> from gatejax import _swap
  >>> target = Path(tempfile.mkdtemp()) / "report"
  >>> staging = _swap.stage(target)
  >>> _ = (staging / "a.txt").write_text("new")
  >>> _swap.swap_in(staging, target)
  >>> sorted(p.name for p in target.iterdir()), staging.exists()
  (['a.txt'], False)
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import sys
from pathlib import Path

__all__ = ["abandon", "stage", "staging_directory", "swap_in"]

_PARTIAL = ".partial-"


def staging_directory(target: Path) -> Path:
  """Where this process stages ``target``'s new contents: ``.NAME.partial-PID`` beside it."""
  target = Path(target).resolve()
  return target.parent / f".{target.name}{_PARTIAL}{os.getpid()}"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # EPERM: it exists, under another user
    return True
  return True


def stage(target: Path) -> Path:
  """A fresh, empty staging directory for ``target`` (its parents created); the staging
  directories of processes that died (killed while writing) are removed first."""
  staging = staging_directory(target)
  staging.parent.mkdir(parents=True, exist_ok=True)
  for old in staging.parent.glob(f".{Path(target).resolve().name}{_PARTIAL}*"):
    pid = old.name.rpartition(_PARTIAL)[2].removesuffix("-old")
    if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
      shutil.rmtree(old, ignore_errors=True)
  staging.mkdir()
  return staging


def _exchange(a: Path, b: Path) -> bool:
  """Exchange two paths in one step (Linux ``renameat2``); ``False`` where unsupported."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
  except (OSError, AttributeError):  # a libc without it (glibc < 2.28, musl)
    return False
  at_fdcwd, rename_exchange = -100, 2
  if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
    return True
  code = ctypes.get_errno()
  if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # kernel or file system without it
    return False
  raise OSError(code, os.strerror(code), str(b))


def swap_in(staging: Path, target: Path) -> None:
  """Put ``staging`` in ``target``'s place and delete the old contents.

  ``target``, if it exists, keeps its permissions; it must be a directory (a symbolic link
  to one is followed).
  """
  target = Path(target).resolve()
  if not target.exists():
    os.rename(staging, target)
    return
  os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
  if _exchange(staging, target):
    shutil.rmtree(staging)
    return
  aside = _aside(staging)
  os.rename(target, aside)
  os.rename(staging, target)
  shutil.rmtree(aside)


def _aside(staging: Path) -> Path:
  return staging.with_name(staging.name + "-old")


def abandon(target: Path) -> None:
  """Give up this process's staging of ``target``, leaving the old contents in place.

  Safe at any point of :func:`swap_in`: after the one-step exchange the staging directory
  holds the old contents, which go; between the two renames of the fallback, the old
  contents are moved back first.
  """
  staging = staging_directory(target)
  aside, target = _aside(staging), Path(target).resolve()
  if aside.exists() and not target.exists():
    os.rename(aside, target)
  shutil.rmtree(staging, ignore_errors=True)
  shutil.rmtree(aside, ignore_errors=True)
