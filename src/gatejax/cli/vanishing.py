"""``gatejax vanishing``: contribution against distance for the chosen cells, as a table and a figure.

The command of :mod:`gatejax.experiments.vanishing`. Everything that can be checked is
checked before the sweeps, which may take minutes: the figure's path and format, and that
the sizes fit in memory. The figure is written whole or not at all (a temporary file beside
it, then renamed over it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gatejax.cli.args import (
  MAX_SEED,
  UsageError,
  check_memory,
  int_at_least,
  seed,
  writable_file,
)
from gatejax.cli.interrupt import on_interrupt

__all__ = ["DEFAULT_CELLS", "HELP", "add_arguments", "main"]

#: The command's one-line help.
HELP = "gradient contribution against distance for any built-in cell"
#: What ``gatejax vanishing`` runs unless told: the classic argument (``--cells`` adds others).
DEFAULT_CELLS = ("rnn", "gru", "lstm")


def _cell_names(text: str) -> list[str]:
  """One ``--cells`` value: a cell's name, or several joined by commas (``slstm,mlstm``)."""
  from gatejax.experiments import vanishing

  names = [name.strip() for name in text.split(",") if name.strip()]
  unknown = [name for name in names if name not in vanishing.CELL_KINDS]
  if not names or unknown:
    raise argparse.ArgumentTypeError(
      f"invalid choice: {(', '.join(map(repr, unknown)) or repr(text))} "
      f"(choose from {', '.join(vanishing.CELL_KINDS)})"
    )
  return names


class _Flatten(argparse.Action):
  """Store the names of every ``--cells`` value as one list (``a b,c`` -> ``[a, b, c]``)."""

  def __call__(self, parser, namespace, values, option_string=None) -> None:
    setattr(namespace, self.dest, [name for group in values or () for name in group])


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax vanishing`` (``gatejax vanishing --help`` lists them)."""
  from gatejax.experiments import vanishing

  parser.add_argument(
    "--cells",
    nargs="+",
    type=_cell_names,
    action=_Flatten,
    default=list(DEFAULT_CELLS),
    metavar="CELL",
    help=f"cells to run, separated by spaces or commas, among {', '.join(vanishing.CELL_KINDS)} "
    "(default: rnn gru lstm; those with a keep-gate bias run at their default bias and with "
    "gj.chrono(T))",
  )
  parser.add_argument("--time", type=int_at_least(3), default=1000, help="sequence length T (>= 3)")
  parser.add_argument("--hidden", type=int_at_least(1), default=32, help="hidden size")
  parser.add_argument("--batch", type=int_at_least(1), default=16, help="sequences in the batch")
  parser.add_argument("--seed", type=seed, default=0, help=f"PRNG seed in [0, {MAX_SEED}]")
  parser.add_argument(
    "--out",
    default="vanishing.png",
    help="path of the figure (PNG, or another format matplotlib knows by its extension), "
    "'' for none; checked before computing, replaced if it exists",
  )


def _figure_format(out: str) -> str:
  """The format matplotlib writes for ``out``'s extension (PNG without one); else UsageError."""
  from matplotlib.backend_bases import FigureCanvasBase

  suffix = Path(out).suffix.lower().removeprefix(".")
  formats = FigureCanvasBase.get_supported_filetypes()
  if suffix and suffix not in formats:
    raise UsageError(
      f"--out {out!r}: matplotlib cannot write .{suffix} files (it writes {', '.join(sorted(formats))})"
    )
  writable_file(out)
  return suffix or "png"


def main(args: argparse.Namespace) -> int:
  """``gatejax vanishing``: run the sweep, print the table (``--out``: draw the figure); the status."""
  import jax

  from gatejax.experiments import vanishing

  sizes = vanishing.Sizes(
    cells=tuple(args.cells), time=args.time, hidden=args.hidden, batch=args.batch
  )
  kind = _figure_format(args.out) if args.out else None
  check_memory(
    vanishing.estimated_bytes(sizes),
    f"--time {args.time} --hidden {args.hidden} --batch {args.batch}",
    "lower --time, --batch or --hidden",
  )
  result = vanishing.run(sizes, key=jax.random.key(args.seed))
  print(vanishing.format_table(result))
  print(f"\n{sum(run.seconds for run in result.runs):.1f} s for {len(result.runs)} sweeps.")
  if kind is not None:
    from gatejax import plots

    out = Path(args.out)
    replaced = out.exists()
    fig = plots.contribution_curves(
      result.curves,
      title=f"Gradient contribution against distance (T = {args.time}, hidden {args.hidden})",
    )
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    on_interrupt(lambda: partial.unlink(missing_ok=True))
    try:
      fig.savefig(partial, dpi=120, format=kind)
      os.replace(partial, out)
    finally:
      plots._pyplot().close(fig)
      partial.unlink(missing_ok=True)
    print(f"Figure: {args.out}{' (replaced the existing file)' if replaced else ''}")
  return 0
