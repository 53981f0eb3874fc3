"""What the commands share: the argument types, the checks made before computing, and the error.

Misuse is reported the way argparse reports it, before any computation: a usage line,
one ``gatejax COMMAND: error: ...`` line on stderr and exit status 2. The argument types
below (:func:`int_at_least`, :func:`seed`) check while parsing; a command's ``main``
raises :class:`UsageError` for what only it can check (an output path that cannot be
written, sizes that cannot fit in memory: :func:`writable_directory`,
:func:`writable_file`, :func:`check_memory`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
  "MAX_SEED",
  "UsageError",
  "available_memory",
  "check_memory",
  "int_at_least",
  "seed",
  "writable_directory",
  "writable_file",
]

#: The largest seed, since without jax_enable_x64 a PRNG seed keeps only its low 32 bits
#: (``key(2**32)`` is ``key(0)``).
MAX_SEED = 2**32 - 1


class UsageError(ValueError):
  """A misuse of a subcommand found after parsing; reported as argparse reports its own."""


def int_at_least(minimum: int) -> Callable[[str], int]:
  """An argparse ``type``: an int ``>= minimum``.

  Example:
    >>> int_at_least(3)("5")
    5
    >>> int_at_least(3)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be an int >= 3, got 0
  """

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {text!r}") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {value}")
    return value

  parse.__name__ = f"int >= {minimum}"
  return parse


def seed(text: str) -> int:
  """An argparse ``type``: a PRNG seed in ``[0, 2**32 - 1]``, the range that gives distinct keys.

  Example:
    >>> seed("42")
    42
    >>> seed(str(2**32))
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be an int in [0, 4294967295] (larger seeds repeat smaller ones), got 4294967296
  """
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"must be an int in [0, {MAX_SEED}], got {text!r}") from None
  if not 0 <= value <= MAX_SEED:
    raise argparse.ArgumentTypeError(
      f"must be an int in [0, {MAX_SEED}] (larger seeds repeat smaller ones), got {value}"
    )
  return value


def _probe(directory: Path) -> None:
  # Write, not os.access: root passes access checks on read-only mounts and /sys.
  with tempfile.TemporaryFile(dir=directory, prefix=".gatejax-write-test-"):
    pass


def writable_directory(path: str | os.PathLike, option: str = "--out") -> Path:
  """Create ``path`` if missing and check that files can be written in it; else :class:`UsageError`.

  Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> file = Path(tempfile.mkdtemp()) / "file"
    >>> _ = file.write_text("")
    >>> writable_directory(file / "report")
    Traceback (most recent call last):
    gatejax.cli.args.UsageError: --out '.../file/report' is not a writable directory: Not a directory
  """
  out = Path(path)
  try:
    out.mkdir(parents=True, exist_ok=True)
    _probe(out)
  except FileExistsError:
    raise UsageError(f"{option} {str(path)!r} exists and is not a directory") from None
  except OSError as e:
    raise UsageError(f"{option} {str(path)!r} is not a writable directory: {e.strerror}") from None
  return out


def writable_file(path: str | os.PathLike, option: str = "--out") -> Path:
  """Check that ``path`` can be written (its directory exists and is writable); else :class:`UsageError`.

  Example:
    >>> writable_file("/no/such/directory/curves.png")
    Traceback (most recent call last):
    gatejax.cli.args.UsageError: --out '/no/such/directory/curves.png': the directory '/no/such/directory' does not exist
  """
  out = Path(path)
  if out.is_dir():
    raise UsageError(f"{option} {str(path)!r} is a directory, not a file name")
  parent = out.parent
  if not parent.is_dir():
    raise UsageError(f"{option} {str(path)!r}: the directory {str(parent)!r} does not exist")
  try:
    _probe(parent)
  except OSError as e:
    raise UsageError(
      f"{option} {str(path)!r}: cannot write in {str(parent)!r}: {e.strerror}"
    ) from None
  return out


def _size(n: float) -> str:
  """Bytes in the largest unit that keeps the number below 1000 (decimal units).

  Example:
    >>> _size(2.36e13), _size(22.4e9), _size(5e5)
    ('23.6 TB', '22.4 GB', '0.5 MB')
  """
  for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9)):
    if n >= scale:
      return f"{n / scale:.3g} {unit}"
  return f"{n / 1e6:.3g} MB"


def available_memory() -> tuple[int | None, str]:
  """Bytes free for a computation on JAX's default device, and what they are.

  An accelerator's free memory (``bytes_limit - bytes_in_use``), else the host's
  ``MemAvailable`` (or its physical memory); ``None`` when neither can be read.
  """
  import jax

  device = jax.local_devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if stats.get("bytes_limit"):
      free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
      return free, f"free memory on the {device.platform.upper()} ({device.device_kind})"
  try:
    for line in Path("/proc/meminfo").read_text().splitlines():
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024, "available RAM"
  except OSError:
    pass
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"
  except (ValueError, OSError, AttributeError):
    return None, "memory"


def check_memory(needed: float, what: str, advice: str) -> None:
  """Raise :class:`UsageError` when ``needed`` bytes exceed :func:`available_memory`.

  Example:
    >>> check_memory(1e6, "--time 100", "lower --time")   # 1 MB fits
    >>> check_memory(1e30, "--time 10**25", "lower --time")
    Traceback (most recent call last):
    gatejax.cli.args.UsageError: --time 10**25 needs about 1e+15 PB of memory, more than the ...; lower --time
  """
  free, kind = available_memory()
  if free is not None and needed > free:
    raise UsageError(
      f"{what} needs about {_size(needed)} of memory, more than the {_size(free)} of {kind}; "
      f"{advice}"
    )
