"""What a compiled gatejax program costs besides run time: memory and compile time.

* Peak memory of forward+backward (gradient of ``sum(ys**2)`` with respect to the weights)
  at a long sequence, with and without ``remat``, from XLA's own accounting of the
  compiled program (``jax.jit(f).lower(...).compile().memory_analysis()``: arguments,
  outputs and temporaries; nothing is run, so it is exact and free of machine load).
* Compile time of forward and forward+backward at several sequence lengths: the scan is
  not unrolled over time, so it must not grow with ``T``.

Usage::

  python benchmarks/memory.py                  # LSTM and GRU, B,I,H = 32,128,256
  python benchmarks/memory.py --steps 4096 --compile-steps 128,1024,8192
  PYTHONPATH=src python3 benchmarks/memory.py  # on a GPU machine, unchanged
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--shape", default="32,128,256", help="B,I,H (batch, input, hidden)")
  parser.add_argument("--cells", default="lstm,gru")
  parser.add_argument("--steps", type=int, default=4096, help="T for the memory table")
  parser.add_argument("--compile-steps", default="128,1024,8192", help="T values to compile at")
  parser.add_argument(
    "--json", help="where to write the results (default benchmarks/results/memory-<backend>.json)"
  )
  return parser.parse_args(argv)


def programs(kind: str, B: int, T: int, I: int, H: int, options: dict):
  """Jitted forward and forward+backward of one layer, and their arguments."""
  import jax
  import jax.numpy as jnp

  import gatejax as gj

  cell = gj.lstm(H) if kind == "lstm" else gj.gru(H)
  params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
  xs = jax.ShapeDtypeStruct((T, B, I), jnp.float32)

  def forward(p, xs):
    return gj.scan(cell, p, xs, **options)[1]

  def grad(p, xs):
    return jax.grad(lambda p: jnp.sum(forward(p, xs) ** 2))(p)

  return jax.jit(forward), jax.jit(grad), (params, xs)


def memory_row(kind: str, B: int, T: int, I: int, H: int, options: dict) -> dict:
  _, grad, args = programs(kind, B, T, I, H, options)
  stats = grad.lower(*args).compile().memory_analysis()
  mib = 1 / 2**20
  row = {
    "argument_mib": stats.argument_size_in_bytes * mib,
    "output_mib": stats.output_size_in_bytes * mib,
    "temp_mib": stats.temp_size_in_bytes * mib,
  }
  row["peak_mib"] = row["argument_mib"] + row["output_mib"] + row["temp_mib"]
  return row


def compile_row(kind: str, B: int, T: int, I: int, H: int, options: dict) -> dict:
  forward, grad, args = programs(kind, B, T, I, H, options)
  row = {}
  for name, fn in (("fwd_s", forward), ("fwd+bwd_s", grad)):
    start = time.perf_counter()
    fn.lower(*args).compile()
    row[name] = time.perf_counter() - start
  return row


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
  import jax

  B, I, H = (int(v) for v in args.shape.split(","))
  kinds = [k.strip() for k in args.cells.split(",") if k.strip()]
  backend = jax.default_backend()
  T = args.steps
  variants = {
    "fused": {},
    "fused remat=True": {"remat": True},
    "fused remat=64": {"remat": 64},
    "autodiff": {"impl": "autodiff"},
    "autodiff remat=True": {"impl": "autodiff", "remat": True},
  }
  results: dict = {"backend": backend, "shape_BIH": [B, I, H], "memory": [], "compile": []}
  print(f"Peak memory of forward+backward, B,T,I,H = {B},{T},{I},{H}, float32 (MiB)")
  print(f"{'':6s} {'variant':22s} {'arguments':>10s} {'outputs':>9s} {'temps':>9s} {'peak':>9s}")
  for kind in kinds:
    for name, options in variants.items():
      row = memory_row(kind, B, T, I, H, options)
      results["memory"].append({"cell": kind, "variant": name, "steps": T, **row})
      print(
        f"{kind:6s} {name:22s} {row['argument_mib']:10.1f} {row['output_mib']:9.1f} "
        f"{row['temp_mib']:9.1f} {row['peak_mib']:9.1f}"
      )
  steps = [int(v) for v in args.compile_steps.split(",")]
  layouts = {"default": {}, "one block (GPU default)": {"block": 1 << 30}}
  print(f"\nCompile time (s), B,I,H = {B},{I},{H}")
  print(f"{'':6s} {'layout':24s} {'T':>6s} {'fwd':>7s} {'fwd+bwd':>8s}")
  for kind in kinds:
    for layout, options in layouts.items():
      for t in steps:
        row = compile_row(kind, B, t, I, H, options)
        results["compile"].append({"cell": kind, "layout": layout, "steps": t, **row})
        print(f"{kind:6s} {layout:24s} {t:6d} {row['fwd_s']:7.2f} {row['fwd+bwd_s']:8.2f}")
  path = args.json or os.path.join(os.path.dirname(__file__), "results", f"memory-{backend}.json")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
