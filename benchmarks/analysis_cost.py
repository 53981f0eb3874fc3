"""Cost of the analysis sweeps relative to one ``jax.grad`` of the same loss.

For each cell, times (median of interleaved repeats, after a compiling warm-up):

* ``grad``: ``jax.jit(jax.grad(loss))`` with respect to the parameters, where
  ``loss(params) = loss_fn(*reversed(gj.scan(cell, params, xs)))``;
* ``contribution_norms``: the per-step split of that same gradient, reduced to ``(T,)``;
* ``jacobian_norms``: ``‖∂c_T/∂c_k‖`` for every ``k``, spectral (``ord=2``, one SVD per
  step and batch element) and Frobenius.

and prints each divided by ``grad``. The target for ``contribution_norms`` is ≤ 3×.
``jacobian_norms`` runs ``D`` reverse sweeps at once (``D`` = carry size: ``H``, or ``2H``
for the LSTM), so its ratio grows with ``D``.

Run: ``python benchmarks/analysis_cost.py [--time 1000 --hidden 64 --batch 16 --repeats 7]``.
The machine may be shared and noisy: the repeats are interleaved so that a burst of load
hits every function alike, and the median is reported with the spread.
"""

from __future__ import annotations

import os

# The SVDs of jacobian_norms go to LAPACK (OpenBLAS); on a small shared machine its worker
# threads oversubscribe the cores and a batch of 128 × 128 SVDs slows from 20 ms to seconds.
# Set before jax loads OpenBLAS; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import gatejax as gj
from gatejax import analysis


def loss_fn(ys, final_carry):
  return jnp.sum(ys[-1] ** 2) + 1e-3 * jnp.sum(ys**2)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--time", type=int, default=1000)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--input", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
  args = parser.parse_args()

  print(
    f"T = {args.time}, hidden {args.hidden}, batch {args.batch}, input {args.input}, "
    f"float32, {args.repeats} interleaved repeats, device {jax.devices()[0].device_kind}, "
    f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
  )
  xs = jax.random.normal(jax.random.key(0), (args.time, args.batch, args.input))
  factories = {"rnn": gj.rnn, "gru": gj.gru, "lstm": gj.lstm}
  header = f"{'cell':<6}{'function':<22}{'median s':>10}{'min s':>9}{'max s':>9}{'× grad':>9}"
  print(header)
  for kind in args.cells:
    cell = factories[kind](args.hidden)
    params = cell.init(jax.random.key(1), args.input)
    grad = jax.jit(jax.grad(lambda p, cell=cell: loss_fn(*gj.scan(cell, p, xs)[::-1])))
    functions = {
      "grad": lambda grad=grad, params=params: grad(params),
      "contribution_norms": lambda cell=cell, params=params: analysis.contribution_norms(
        cell, params, xs, loss_fn
      ),
      "jacobian_norms ord=2": lambda cell=cell, params=params: analysis.jacobian_norms(
        cell, params, xs, ord=2
      ),
      'jacobian_norms "fro"': lambda cell=cell, params=params: analysis.jacobian_norms(
        cell, params, xs, ord="fro"
      ),
    }
    times: dict[str, list[float]] = {name: [] for name in functions}
    for fn in functions.values():
      jax.block_until_ready(fn())  # compile
    for _ in range(args.repeats):
      for name, fn in functions.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times[name].append(time.perf_counter() - start)
    base = statistics.median(times["grad"])
    for name, ts in times.items():
      median = statistics.median(ts)
      print(
        f"{kind:<6}{name:<22}{median:>10.4f}{min(ts):>9.4f}{max(ts):>9.4f}{median / base:>9.2f}"
      )


if __name__ == "__main__":
  main()
