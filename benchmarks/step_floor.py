"""The floor at the shapes a sequential recurrence must use: a layer's per-step matmuls alone.

``speed.py``'s floor prices every FLOP at the rate of a 2048³ matmul. A recurrence cannot
run at that rate: each step multiplies ``B`` rows (``M = 32``), and the backward pass's
weight gradients contract over the batch (``K = 32``). This script times, in one
``lax.scan`` over ``T`` steps and with no elementwise work, only the matmuls an LSTM
(``G = 4`` gate blocks) or GRU (``G = 3``) does per step:

- ``forward``: ``x_t W_x + h W_h``;
- ``backward, per step``: ``δ W_hᵀ`` (the recurrence), ``hᵀ δ`` and ``x_tᵀ δ`` (weight
  gradients, ``K = B``), ``δ W_xᵀ`` (input gradients);
- ``backward, hoisted``: only ``δ W_hᵀ`` per step, then the weight and input gradients as
  three matmuls over all ``T·B`` rows (the best any reordering of the weight gradients
  can do, before paying to store ``δ`` and ``h`` for the whole sequence);

each against the 2048³ matmul timed in the same interleaved rounds. The ratios say how
close to ``speed.py``'s floor any implementation of a recurrence can come on this CPU.

Usage::

  python benchmarks/step_floor.py --threads 1      # pinned to one core
  python benchmarks/step_floor.py                  # every core of the process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def measure(name: str, G: int, shape: tuple[int, int, int, int], rounds: int) -> dict:
  """Time one layer's per-step matmuls (``G`` gate blocks) against a 2048³ matmul."""
  import jax
  import jax.numpy as jnp

  B, T, I, H = shape
  k = jax.random.split(jax.random.key(0), 3)
  wx = jax.random.normal(k[0], (I, G * H)) * 0.01
  wh = jax.random.normal(k[1], (H, G * H)) * 0.01
  xs = jax.random.normal(k[2], (T, B, I))
  hs = jnp.ones((T, B, H))

  @jax.jit
  def forward(wx, wh, xs):
    def body(h, x):
      return (x @ wx + h @ wh)[:, :H], None

    return jax.lax.scan(body, jnp.zeros((B, H)), xs)[0]

  @jax.jit
  def backward(wx, wh, xs):
    def body(c, x):
      dh, dwx, dwh = c
      d = jnp.tile(dh, (1, G))
      return ((d @ wh.T) * 0.5, dwx + x.T @ d, dwh + dh.T @ d), d @ wx.T

    zeros = (jnp.ones((B, H)), jnp.zeros_like(wx), jnp.zeros_like(wh))
    return jax.lax.scan(body, zeros, xs)

  @jax.jit
  def hoisted(wx, wh, xs, hs):
    def body(dh, _):
      d = jnp.tile(dh, (1, G))
      return (d @ wh.T) * 0.5, d

    dh, ds = jax.lax.scan(body, jnp.ones((B, H)), xs)
    d = ds.reshape(T * B, G * H)
    return dh, xs.reshape(T * B, I).T @ d, hs.reshape(T * B, H).T @ d, d @ wx.T

  big = jax.jit(lambda a, b: a @ b)
  a = jnp.ones((2048, 2048))
  calls = {
    "forward": lambda: forward(wx, wh, xs),
    "backward": lambda: backward(wx, wh, xs),
    "hoisted": lambda: hoisted(wx, wh, xs, hs),
    "matmul": lambda: big(a, a),
  }
  for call in calls.values():
    jax.block_until_ready(call())
    jax.block_until_ready(call())
  times: dict[str, list[float]] = {n: [] for n in calls}
  for _ in range(rounds):
    for n, call in calls.items():
      began = time.perf_counter()
      jax.block_until_ready(call())
      times[n].append(time.perf_counter() - began)
  med = {n: statistics.median(v) for n, v in times.items()}
  rate = 2 * 2048**3 / med["matmul"]
  fwd_flops = 2 * T * B * (I + H) * G * H
  row = {
    "gflops": rate / 1e9,
    "forward_ms": 1e3 * med["forward"],
    "backward_ms": 1e3 * med["backward"],
    "hoisted_ms": 1e3 * med["hoisted"],
    "forward_per_floor": med["forward"] * rate / fwd_flops,
    "backward_per_floor": med["backward"] * rate / (2 * fwd_flops),
    "hoisted_per_floor": med["hoisted"] * rate / (2 * fwd_flops),
    "total_per_floor": (med["forward"] + med["backward"]) * rate / (3 * fwd_flops),
    "total_hoisted_per_floor": (med["forward"] + med["hoisted"]) * rate / (3 * fwd_flops),
  }
  print(
    f"{name.upper():4} 2048³ at {row['gflops']:.0f} GFLOP/s; matmuls alone, /floor: "
    f"forward {row['forward_per_floor']:.2f}, backward {row['backward_per_floor']:.2f} "
    f"(hoisted {row['hoisted_per_floor']:.2f}), forward+backward {row['total_per_floor']:.2f} "
    f"(hoisted {row['total_hoisted_per_floor']:.2f})",
    flush=True,
  )
  return row


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--shape", default="32,256,128,256", help="B,T,I,H")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--threads", type=int, help="pin the process to this many cores")
  parser.add_argument("--json", help="where to write the results")
  args = parser.parse_args(argv)
  if args.threads:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.threads]))

  B, T, I, H = (int(v) for v in args.shape.split(","))
  rows = {
    name: measure(name, G, (B, T, I, H), args.rounds) for name, G in (("lstm", 4), ("gru", 3))
  }
  out = {"shape": [B, T, I, H], "cores": len(os.sched_getaffinity(0))}
  out |= {"load_average": list(os.getloadavg()), "rows": rows}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
