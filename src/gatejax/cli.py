"""The ``gatejax`` command (also ``python -m gatejax``).

Subcommands live in their own modules and are imported only when run, so that
``gatejax --help`` stays fast and ``import gatejax`` never pulls in matplotlib.
Each such module provides ``add_arguments(parser)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
  "demo": ("gatejax.experiments.demo", "a short demonstration of the cells and the runner"),
  "vanishing": (
    "gatejax.experiments.vanishing",
    "gradient contribution against distance for RNN, GRU and LSTM",
  ),
  "report": ("gatejax.report", "the whole argument as a report with figures (the main job)"),
}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="gatejax",
    description="Recurrent cells in JAX, and why gates keep long-range gradients alive.",
  )
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (module, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(_module=module)
    try:
      importlib.import_module(module).add_arguments(p)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise
      p.set_defaults(_missing=True)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Run the command line; returns the exit status."""
  parser = _parser()
  args = parser.parse_args(argv)
  if args.command is None:
    args = parser.parse_args(["demo", *(argv or [])])
  if getattr(args, "_missing", False):
    parser.error(f"the {args.command!r} command is not available in this version")
  return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":
  sys.exit(main())
