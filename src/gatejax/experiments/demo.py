"""``gatejax demo``: run every cell over one random sequence and show where its gradient comes from.

For each cell the loss is the squared output of the last step, and the gradient with
respect to the input at each time step says how much that step still matters at the
end: the far steps fade in a tanh RNN and survive in gated cells whose gates keep.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import gatejax as gj
from gatejax import cli

INPUT_SIZE, BATCH = 8, 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax demo`` (``gatejax demo --help`` lists them)."""
  parser.add_argument(
    "--time", type=cli.int_at_least(3), default=200, help="sequence length T (>= 3, for chrono(T))"
  )
  parser.add_argument("--hidden", type=cli.int_at_least(1), default=32, help="hidden size")
  parser.add_argument("--seed", type=cli.seed, default=0, help=f"PRNG seed in [0, {cli.MAX_SEED}]")


def _estimated_bytes(time: int, hidden: int) -> float:
  """Peak memory of the largest cell's gradient profile (the LSTM's), in bytes.

  Fitted to XLA's own ``memory_analysis()`` of :func:`input_gradient_profile` on CPU
  (jax 0.10): the stored residuals, ``31 × T × batch × hidden`` bytes, and the parameters
  with their gradients, ``21 × hidden × (hidden + input)``.
  """
  return time * BATCH * (31 * hidden + 4 * INPUT_SIZE) + 21 * hidden * (hidden + INPUT_SIZE)


def input_gradient_profile(cell: gj.Cell, params, xs: jax.Array) -> jax.Array:
  """``‖∂L/∂x_t‖`` per step ``t`` for ``L = ‖y_T‖²``, averaged over the batch."""

  def loss(xs):
    _, ys = gj.scan(cell, params, xs)
    return jnp.sum(ys[-1] ** 2)

  grads = jax.grad(loss)(xs)
  return jnp.sqrt(jnp.sum(grads**2, axis=-1)).mean(axis=-1)


def main(args: argparse.Namespace) -> int:
  """``gatejax demo``: print where each cell's gradient comes from; the exit status."""
  cli.check_memory(
    _estimated_bytes(args.time, args.hidden),
    f"--time {args.time} --hidden {args.hidden}",
    "lower --time or --hidden",
  )
  key = jax.random.key(args.seed)
  k_x, k_p = jax.random.split(key)
  input_size, batch = INPUT_SIZE, BATCH
  xs = jax.random.normal(k_x, (args.time, batch, input_size))
  cells = {
    "rnn (tanh)": gj.rnn(args.hidden),
    "gru": gj.gru(args.hidden),
    f"gru, chrono({args.time})": gj.gru(args.hidden, update_bias=gj.chrono(args.time)),
    "lstm": gj.lstm(args.hidden),
    f"lstm, chrono({args.time})": gj.lstm(args.hidden, forget_bias=gj.chrono(args.time)),
  }
  distances = [d for d in (1, 10, 30, 100, 300, 1000) if d <= args.time]
  print(f"‖∂L/∂x_(T-d)‖ for L = ‖y_T‖², T = {args.time}, hidden {args.hidden}, batch {batch}")
  print(f"{'cell':<22}" + "".join(f"{'d=' + str(d):>11}" for d in distances) + f"{'time':>9}")
  for name, cell in cells.items():
    params = cell.init(k_p, input_size)
    start = time.perf_counter()
    profile = jax.block_until_ready(input_gradient_profile(cell, params, xs))
    elapsed = time.perf_counter() - start
    row = "".join(f"{float(profile[args.time - d]):>11.2e}" for d in distances)
    print(f"{name:<22}{row}{elapsed:>8.2f}s")
  print("\nFar steps vanish in the tanh RNN; gates that keep (chrono biases) hold them.")
  print("The full argument, with figures: gatejax report")
  return 0
