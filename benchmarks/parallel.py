"""Time ``gj.parallel_scan`` (DEER, quasi-DEER) against ``gj.scan``: where does Newton pay off?

One process; for each shape every contender is compiled and warmed up, then timed in
interleaved rounds (one call of each per round, in turn), so that a change of machine load
touches all of them alike, and each time is the median over the rounds (``speed.py``'s
method). Forward is ``ys`` of the whole sequence; forward+backward is the gradient of
``sum(ys**2)`` with respect to the cell's parameters (implicit for the parallel runner).
Each parallel run also reports its Newton sweeps (``info.iterations``, max over the batch),
whether it converged, and its largest deviation from ``gj.scan``. Memory: XLA's own account
of each compiled function's temporaries (``memory_analysis``), on any backend, plus the
device's peak where the backend reports one.

DEER holds ``T·B`` Jacobians of ``n × n`` (``n = H`` for a GRU, ``2H`` for an LSTM) and the
associative scan a few times that, and so does every backward pass (the implicit gradient
solves with full Jacobians, whatever the method); quasi-DEER's forward pass holds
``O(T B n)``. A contender whose estimate (``4 T B n²`` floats) exceeds ``--memory-fraction``
of the device's memory is skipped, and so is one whose allocation fails; the output says so.

Usage::

  python benchmarks/parallel.py --quick          # tiny shapes, 3 rounds: a smoke test
  python benchmarks/parallel.py                  # B ∈ {1, 16}, H ∈ {1, 8, 32, 128}, T ∈ {1e3, 1e4, 1e5}
  python benchmarks/parallel.py --batch 16 --hidden 32 --time 1000,10000 --cell lstm

The same command runs on a GPU (JAX picks the backend). float32 matmuls run at
``--precision highest`` by default: TF32 rounding (the GPU default for float32 matmuls on
recent NVIDIA parts) would put Newton's residual floor near 1e-3, far above its tolerance.
Results are printed and written as JSON (default
``benchmarks/results/parallel-<backend>[-quick].json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from speed import interleaved, machine

FULL = {"batch": [1, 16], "hidden": [1, 8, 32, 128], "time": [1_000, 10_000, 100_000]}
QUICK = {"batch": [2], "hidden": [8], "time": [64, 256]}
METHODS = ("deer", "quasi")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny shapes, 3 rounds")
  parser.add_argument("--batch", help="comma-separated batch sizes")
  parser.add_argument("--hidden", help="comma-separated hidden sizes")
  parser.add_argument("--time", help="comma-separated sequence lengths")
  parser.add_argument("--cell", default="gru", choices=["gru", "lstm"])
  parser.add_argument("--input", type=int, default=8, help="input features")
  parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
  parser.add_argument(
    "--memory-fraction",
    type=float,
    default=0.25,
    help="skip a contender whose estimated peak exceeds this fraction of the device's memory",
  )
  parser.add_argument(
    "--methods", default=",".join(METHODS), help="comma-separated: deer, quasi (default both)"
  )
  parser.add_argument("--precision", default="highest", choices=["highest", "default"])
  parser.add_argument("--json", help="where to write the results")
  return parser.parse_args(argv)


def device_memory_bytes() -> tuple[int, str]:
  """The device's memory and where the number came from."""
  import jax

  stats = jax.devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"]), "device bytes_limit"
  pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
  return int(pages * size), "host physical memory"


def estimate_bytes(name: str, mode: str, T: int, B: int, n: int) -> int:
  """A rough peak (float32) of the parallel runner: ``T·B`` Jacobians of ``n × n`` and about
  three times that in the associative scan, for DEER and for every backward pass (the
  implicit gradient solves with full Jacobians whatever the method); quasi-DEER's forward
  pass and ``gj.scan`` need ``O(T·B·n)``."""
  if name == "scan" or (name != "deer" and mode == "fwd"):
    return 0
  return 4 * T * B * n * n * 4


def contenders(
  cell_kind: str, B: int, H: int, T: int, I: int, budget: float, methods: tuple[str, ...] = METHODS
):
  """``(params, xs, calls, skipped)``: ``calls["deer | fwd"] = (blocking call, compiled)``."""
  import jax
  import jax.numpy as jnp

  import gatejax as gj

  cell = gj.lstm(H) if cell_kind == "lstm" else gj.gru(H)
  n = 2 * H if cell_kind == "lstm" else H
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (T, B, I))

  def runner(method: str | None) -> Callable:
    """``(p, xs) -> (ys, info)``; ``info`` is ``None`` for ``gj.scan``."""
    if method is None:
      return lambda p, xs: (gj.scan(cell, p, xs)[1], None)
    return lambda p, xs: gj.parallel_scan(cell, p, xs, method=method)[1:]

  calls, skipped = {}, {}
  for method in [None, *methods]:
    name = method or "scan"
    forward = runner(method)
    grad = jax.grad(lambda p, xs, forward=forward: jnp.sum(forward(p, xs)[0] ** 2))
    for mode, fn in (("fwd", forward), ("fwd+bwd", grad)):
      key, need = f"{name} | {mode}", estimate_bytes(name, mode, T, B, n)
      if need > budget:
        skipped[key] = f"needs ~{need / 2**30:.1f} GiB > budget {budget / 2**30:.1f} GiB"
        continue
      try:
        compiled = jax.jit(fn).lower(params, xs).compile()
        jax.block_until_ready(compiled(params, xs))
      except Exception as e:  # the estimate is rough: an allocation may still fail
        if "RESOURCE_EXHAUSTED" not in str(e) and not isinstance(e, MemoryError):
          raise
        skipped[key] = f"out of memory: {str(e).splitlines()[0][:120]}"
        continue
      calls[key] = (lambda c=compiled: jax.block_until_ready(c(params, xs)), compiled)
  return params, xs, calls, skipped


def temp_bytes(compiled) -> int | None:
  try:
    return int(compiled.memory_analysis().temp_size_in_bytes)
  except Exception:  # not every backend reports it
    return None


def newton_report(calls: dict, params, xs, method: str) -> dict[str, object]:
  """Sweeps, convergence and the deviation from ``gj.scan`` of one parallel run."""
  import jax.numpy as jnp

  ref, _ = calls["scan | fwd"][1](params, xs)
  ys, info = calls[f"{method} | fwd"][1](params, xs)
  return {
    "iterations_max": int(info.iterations.max()),
    "iterations_mean": float(info.iterations.mean()),
    "converged": bool(info.converged.all()),
    "max_abs_error_vs_scan": float(jnp.max(jnp.abs(ys - ref))),
  }


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  import jax

  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
  if args.precision == "highest":
    jax.config.update("jax_default_matmul_precision", "highest")
  grid = dict(QUICK if args.quick else FULL)
  for key in ("batch", "hidden", "time"):
    value = getattr(args, key)
    if value:
      grid[key] = [int(v) for v in value.split(",")]
  rounds = 3 if args.quick else args.rounds
  methods = tuple(m for m in args.methods.split(",") if m)
  if not methods or set(methods) - set(METHODS):
    raise SystemExit(f"--methods: a comma-separated subset of {', '.join(METHODS)}")
  memory, memory_source = device_memory_bytes()
  budget = args.memory_fraction * memory
  info = machine()
  info |= {"memory_bytes": memory, "memory_source": memory_source, "precision": args.precision}
  print(json.dumps(info))
  results = []
  for B in grid["batch"]:
    for H in grid["hidden"]:
      for T in grid["time"]:
        start = time.perf_counter()
        params, xs, calls, skipped = contenders(args.cell, B, H, T, args.input, budget, methods)
        compile_s = time.perf_counter() - start
        for key, why in skipped.items():
          print(f"B={B} H={H} T={T}: {key} skipped, {why}")
        timings = interleaved({key: call for key, (call, _) in calls.items()}, rounds)
        ran = [m for m in methods if f"{m} | fwd" in calls]
        row: dict[str, object] = {
          "batch": B,
          "hidden": H,
          "time": T,
          "skipped": skipped,
          "compile_s": compile_s,
          "timings": timings,
          "temp_bytes": {key: temp_bytes(compiled) for key, (_, compiled) in calls.items()},
          "newton": {m: newton_report(calls, params, xs, m) for m in ran},
        }
        stats = jax.devices()[0].memory_stats() or {}
        row["device_peak_bytes"] = stats.get("peak_bytes_in_use")
        results.append(row)
        print_row(row, methods)
  crossover = crossovers(results, methods)
  print("\ncrossover: the shortest T at which the parallel runner beats gj.scan")
  for key, value in crossover.items():
    print(f"  {key}: {value}")
  suffix = "-quick" if args.quick else ""
  backend = jax.default_backend()
  default = os.path.join(os.path.dirname(__file__), "results", f"parallel-{backend}{suffix}.json")
  path = args.json or default
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  payload = {"machine": info, "cell": args.cell, "rounds": rounds, "results": results}
  with open(path, "w") as f:
    json.dump(payload | {"crossover": crossover}, f, indent=1)
  print(f"wrote {path}")
  return 0


def crossovers(results: list[dict], methods: tuple[str, ...] = METHODS) -> dict[str, object]:
  """Per batch, hidden, method and mode: the shortest T where parallel/scan < 1 (None if no T
  of the grid; "skipped" if the shortest T was skipped, for memory)."""
  out: dict[str, object] = {}
  for row in sorted(results, key=lambda r: r["time"]):
    for method in methods:
      for mode in ("fwd", "fwd+bwd"):
        key = f"B={row['batch']} H={row['hidden']} {method} {mode}"
        timings = row["timings"]
        if f"{method} | {mode}" not in timings:
          out.setdefault(key, "skipped")
          continue
        ratio = timings[f"{method} | {mode}"]["median_ms"] / timings[f"scan | {mode}"]["median_ms"]
        if ratio < 1 and out.get(key) is None:
          out[key] = row["time"]
        out.setdefault(key, None)
  return out


def print_row(row: dict, methods: tuple[str, ...] = METHODS) -> None:
  B, H, T = row["batch"], row["hidden"], row["time"]
  timings, newton = row["timings"], row["newton"]
  print(f"\nB={B} H={H} T={T}   median ms [q1-q3]   (compiled in {row['compile_s']:.1f} s)")
  print(f"{'':8s} {'fwd':>22s} {'fwd+bwd':>22s}   /scan fwd, fwd+bwd   sweeps  max|Δys|")
  for name in ("scan", *methods):
    line, ratios = f"{name:8s}", []
    for mode in ("fwd", "fwd+bwd"):
      t = timings.get(f"{name} | {mode}")
      scan = timings.get(f"scan | {mode}")
      line += (
        f" {'skipped':>22s}"
        if t is None
        else f" {t['median_ms']:8.2f} [{t['q1_ms']:5.1f}-{t['q3_ms']:5.1f}]"
      )
      ratios.append(
        "  --  " if t is None or scan is None else f"{t['median_ms'] / scan['median_ms']:6.2f}"
      )
    if name != "scan":
      line += "   " + " ".join(ratios)
    if name in newton:
      report = newton[name]
      line += f"      {report['iterations_max']:4d}  {report['max_abs_error_vs_scan']:.1e}"
      line += "" if report["converged"] else " (not converged)"
    print(line)
  temps = ", ".join(
    f"{key} {'?' if b is None else f'{b / 2**20:.1f}'}" for key, b in row["temp_bytes"].items()
  )
  print(f"XLA temporaries, MiB: {temps}")
  if row["device_peak_bytes"] is not None:
    print(f"device peak {row['device_peak_bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
  sys.exit(main())
