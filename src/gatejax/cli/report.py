"""``gatejax report``: the whole argument, measured, as a markdown report with figures.

The command of :mod:`gatejax.report`. The output directory is checked before anything is
computed (the report takes minutes): it must be writable, and hold nothing but an earlier
report, which is then replaced, loudly. The new report is written beside it and swapped in
whole (:func:`gatejax.report.write_report`), so ^C or a kill leaves the earlier one.
"""

from __future__ import annotations

import argparse
import sys
import time

from gatejax.cli.args import MAX_SEED, UsageError, seed, writable_directory
from gatejax.cli.interrupt import on_interrupt

__all__ = ["HELP", "add_arguments", "main"]

#: The command's one-line help.
HELP = "the whole argument as a report with figures (the main job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax report`` (``gatejax report --help`` lists them)."""
  parser.add_argument(
    "--out",
    default="gatejax-report",
    help="output directory (default: gatejax-report), created if missing and checked to be "
    "writable before anything is computed; an earlier report there is replaced, and the "
    "command says so",
  )
  sizes = parser.add_mutually_exclusive_group()
  sizes.add_argument(
    "--quick", action="store_true", help="tiny sizes: a smoke test in well under a minute"
  )
  sizes.add_argument(
    "--full",
    action="store_true",
    help="the state-tracking section at its full sizes (every cell; about half an hour or more "
    "on two CPU cores, estimated up front, with a progress bar) instead of its reduced "
    "default; the other sections as by default",
  )
  parser.add_argument(
    "--seed", type=seed, default=0, help=f"base seed of every experiment, in [0, {MAX_SEED}]"
  )


def main(args: argparse.Namespace) -> int:
  """``gatejax report``: check the output directory, then write the report; the exit status."""
  from gatejax import report as writer

  out = writable_directory(args.out)
  try:
    writer.check_output(out, name="--out")
  except ValueError as e:
    raise UsageError(str(e)) from None
  # Rerunning the README's command must work, so an earlier report is replaced, loudly.
  existing = [name for name in ("report.md", "report.json") if (out / name).exists()]
  began = time.perf_counter()

  def say(message: str) -> None:
    print(f"[{time.perf_counter() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

  full = bool(getattr(args, "full", False))
  flag = " --quick" if args.quick else " --full" if full else ""
  say(f"gatejax report{flag}: writing {out}/")
  if existing:
    say(f"replacing an earlier report: {', '.join(str(out / name) for name in existing)}")
  if full:
    estimate = writer.estimate_seconds(full=True) or 0.0
    say(
      f"--full: the state-tracking section alone is estimated at {estimate / 60:.0f} min on two "
      "CPU cores shared with other work (about half that on an idle machine), plus a few "
      "minutes for the other sections"
    )
  on_interrupt(lambda: writer.abandon(out))
  writer.write_report(out, quick=args.quick, full=full, seed=args.seed, say=say, bar=full)
  say(f"done: {out / 'report.md'}, {out / 'report.json'}")
  print(out / "report.md")
  return 0
