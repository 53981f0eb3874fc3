"""The ``gatejax`` command (also ``python -m gatejax``).

Each command is a module of this package with ``HELP`` (its one line), ``add_arguments(parser)``
and ``main(args) -> int``: :mod:`~gatejax.cli.demo`, :mod:`~gatejax.cli.vanishing` and
:mod:`~gatejax.cli.report`. They import the experiments only when run, and the experiments
and the report never import this package: measuring and writing know nothing of the
command line. What the commands share (argument types, checks, :class:`~gatejax.cli.args.UsageError`)
is :mod:`gatejax.cli.args`.

Misuse is reported the way argparse reports it, before any computation: a usage line,
one ``gatejax COMMAND: error: ...`` line on stderr and exit status 2. ^C ends the program
with one line and status 130 (:mod:`gatejax.cli.interrupt`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gatejax.cli import demo, interrupt, report, vanishing
from gatejax.cli.args import UsageError

__all__ = ["COMMANDS", "entry", "main"]

#: The commands by name, each a module with ``HELP``, ``add_arguments`` and ``main``.
COMMANDS = {"demo": demo, "vanishing": vanishing, "report": report}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="gatejax",
    description="Recurrent cells in JAX, and why gates keep long-range gradients alive.",
  )
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, command in COMMANDS.items():
    p = sub.add_parser(name, help=command.HELP, description=command.HELP)
    p.set_defaults(_command=command, _error=p.error)
    command.add_arguments(p)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Run the command line; returns the exit status (2 for a misuse, after one error line)."""
  parser = _parser()
  try:
    args = parser.parse_args(argv)
    if args.command is None:
      args = parser.parse_args(["demo", *(argv or [])])
    try:
      return int(args._command.main(args) or 0)
    except UsageError as e:
      args._error(str(e))
  except SystemExit as e:  # argparse's exit, after its message: --help (0) or a misuse (2)
    return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
  return 2  # not reached: args._error exits


def entry() -> None:
  """The ``gatejax`` program: :func:`main` on ``sys.argv``, exiting with its status.

  Its figures go to files, never to a window, so it draws with matplotlib's Agg backend
  unless ``MPLBACKEND`` names another; and ^C ends it at once with one line and status 130
  (:func:`gatejax.cli.interrupt.guarded`). Both are the program's own settings: :func:`main`,
  called from Python, leaves the caller's backend and ^C alone.
  """
  os.environ.setdefault("MPLBACKEND", "Agg")
  sys.exit(interrupt.guarded(lambda: main()))


if __name__ == "__main__":
  entry()
