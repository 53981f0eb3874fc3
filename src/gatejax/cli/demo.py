"""``gatejax demo``: where each classic cell's gradient comes from, printed as a table.

The command of :mod:`gatejax.experiments.demo`: it checks that the sizes fit in memory,
runs the experiment and prints :func:`gatejax.experiments.demo.format_table`.
"""

from __future__ import annotations

import argparse

from gatejax.cli.args import MAX_SEED, check_memory, int_at_least, seed

__all__ = ["HELP", "add_arguments", "main"]

#: The command's one-line help.
HELP = "a short demonstration of the cells and the runner"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax demo`` (``gatejax demo --help`` lists them)."""
  parser.add_argument(
    "--time", type=int_at_least(3), default=200, help="sequence length T (>= 3, for chrono(T))"
  )
  parser.add_argument("--hidden", type=int_at_least(1), default=32, help="hidden size")
  parser.add_argument("--seed", type=seed, default=0, help=f"PRNG seed in [0, {MAX_SEED}]")


def main(args: argparse.Namespace) -> int:
  """``gatejax demo``: print where each cell's gradient comes from; the exit status."""
  import jax

  from gatejax.experiments import demo

  sizes = demo.FULL._replace(time=args.time, hidden=args.hidden)
  check_memory(
    demo.estimated_bytes(sizes),
    f"--time {args.time} --hidden {args.hidden}",
    "lower --time or --hidden",
  )
  result = demo.run(sizes, key=jax.random.key(args.seed))
  print(demo.format_table(result))
  print("\nFar steps vanish in the tanh RNN; gates that keep (chrono biases) hold them.")
  print("The full argument, with figures: gatejax report")
  return 0
