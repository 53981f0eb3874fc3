"""The ``gatejax`` command (also ``python -m gatejax``).

Subcommands live in their own modules and are imported only when run, so that
``gatejax --help`` stays fast and ``import gatejax`` never pulls in matplotlib.
Each such module provides ``add_arguments(parser)`` and ``main(args) -> int``.

Misuse is reported the way argparse reports it, before any computation: a usage line,
one ``gatejax COMMAND: error: ...`` line on stderr and exit status 2. A subcommand's
``main`` raises :class:`UsageError` for what only it can check (an output path that cannot
be written, sizes that cannot fit in memory); the argument types below check the rest
while parsing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
  "demo": ("gatejax.experiments.demo", "a short demonstration of the cells and the runner"),
  "vanishing": (
    "gatejax.experiments.vanishing",
    "gradient contribution against distance for RNN, GRU and LSTM",
  ),
  "report": ("gatejax.report", "the whole argument as a report with figures (the main job)"),
}

# Without jax_enable_x64 a PRNG seed keeps only its low 32 bits: key(2**32) is key(0).
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
    >>> from gatejax import cli
    >>> file = Path(tempfile.mkdtemp()) / "file"
    >>> _ = file.write_text("")
    >>> cli.writable_directory(file / "report")
    Traceback (most recent call last):
    gatejax.cli.UsageError: --out '.../file/report' is not a writable directory: Not a directory
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
    >>> from gatejax import cli
    >>> cli.writable_file("/no/such/directory/curves.png")
    Traceback (most recent call last):
    gatejax.cli.UsageError: --out '/no/such/directory/curves.png': the directory '/no/such/directory' does not exist
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
    >>> from gatejax import cli
    >>> cli.check_memory(1e6, "--time 100", "lower --time")   # 1 MB fits
    >>> cli.check_memory(1e30, "--time 10**25", "lower --time")
    Traceback (most recent call last):
    gatejax.cli.UsageError: --time 10**25 needs about 1e+15 PB of memory, more than the ...; lower --time
  """
  free, kind = available_memory()
  if free is not None and needed > free:
    raise UsageError(
      f"{what} needs about {_size(needed)} of memory, more than the {_size(free)} of {kind}; "
      f"{advice}"
    )


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="gatejax",
    description="Recurrent cells in JAX, and why gates keep long-range gradients alive.",
  )
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (module, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(_module=module, _error=p.error)
    try:
      importlib.import_module(module).add_arguments(p)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise
      p.set_defaults(_missing=True)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Run the command line; returns the exit status (2 for a misuse, after one error line)."""
  parser = _parser()
  try:
    args = parser.parse_args(argv)
    if args.command is None:
      args = parser.parse_args(["demo", *(argv or [])])
    if getattr(args, "_missing", False):
      parser.error(f"the {args.command!r} command is not available in this version")
    try:
      return int(importlib.import_module(args._module).main(args) or 0)
    except UsageError as e:
      args._error(str(e))
  except SystemExit as e:  # argparse's exit, after its message: --help (0) or a misuse (2)
    return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
  return 2  # not reached: args._error exits


def entry() -> None:
  """The ``gatejax`` program: :func:`main` on ``sys.argv``, exiting with its status.

  Its figures go to files, never to a window, so it draws with matplotlib's Agg backend
  unless ``MPLBACKEND`` names another. This is the program's own setting: :func:`main`,
  called from Python, leaves the caller's backend alone.
  """
  os.environ.setdefault("MPLBACKEND", "Agg")
  sys.exit(main())


if __name__ == "__main__":
  entry()
