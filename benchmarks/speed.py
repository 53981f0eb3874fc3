"""Time gatejax against Flax (``nn.RNN``) and PyTorch (oneDNN on CPU, cuDNN on GPU).

One process, every contender compiled and warmed up first, then timed in interleaved
rounds (one call of each per round, in turn), so that a change of machine load during
the run touches all of them alike; each time is the median over the rounds. Forward is
``ys`` for the whole sequence; forward+backward is the gradient of ``sum(ys**2)`` with
respect to the layer's weights (float32, each framework's defaults otherwise).

On a CPU each round also times a float32 2048³ matmul: at its rate, a layer's matmul FLOPs
give its *floor*, the time no implementation of the same arithmetic can beat, printed beside
every number (``/floor``).

Usage::

  python benchmarks/speed.py                       # the default shapes of this device
  python benchmarks/speed.py --quick               # a small shape, few rounds: a smoke test
  python benchmarks/speed.py --shape 32,256,128,256 --cells lstm
  python benchmarks/speed.py --levers              # gatejax variants: impl, unroll, bf16, ...
  python benchmarks/speed.py --threads 1           # pin the process to one core (CPU)

On a GPU machine (JAX with CUDA, PyTorch with cuDNN) the same command times the issue's
three H100 shapes: ``PYTHONPATH=src python3 benchmarks/speed.py``. Results are printed as
a table with ratios and written as JSON (``--json``; default
``benchmarks/results/speed-<backend>[-quick|-levers].json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

CPU_SHAPES = [(32, 256, 128, 256)]
GPU_SHAPES = [(64, 512, 256, 512), (8, 1024, 128, 256), (256, 256, 1024, 1024)]
QUICK_SHAPE = (8, 32, 16, 32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--shape", action="append", help="B,T,I,H (batch, time, input, hidden); repeatable"
  )
  parser.add_argument("--cells", default="lstm,gru", help="comma-separated: lstm, gru")
  parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
  parser.add_argument("--quick", action="store_true", help="small shape, 3 rounds")
  parser.add_argument("--threads", type=int, help="pin the process to this many cores (CPU)")
  parser.add_argument("--levers", action="store_true", help="also time gatejax variants")
  parser.add_argument("--no-flax", action="store_true")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument(
    "--json", help="where to write the results (default benchmarks/results/speed-<backend>.json)"
  )
  return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Contenders: each returns {"name": callable} of zero-argument, blocking calls
# ---------------------------------------------------------------------------


def gatejax_calls(kind: str, shape: tuple[int, ...], levers: bool) -> dict[str, Callable]:
  import jax
  import jax.numpy as jnp

  import gatejax as gj

  B, T, I, H = shape
  cell = gj.lstm(H) if kind == "lstm" else gj.gru(H)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (T, B, I))
  variants = {"gatejax": {}, "gj bf16": {"matmul_dtype": jnp.bfloat16}}
  if levers:
    # One lever moved at a time from the defaults (fused VJP, the backend's block).
    variants |= {
      "gj autodiff": {"impl": "autodiff"},
      "gj hoisted": {"block": T},  # one block: projection and weight grads over all steps
      "gj hoisted autodiff": {"block": T, "impl": "autodiff"},  # the original plain path
      "gj block4": {"block": 4},
      "gj block16": {"block": 16},
      "gj unroll2": {"unroll": 2},
      "gj unroll4": {"unroll": 4},
      "gj remat": {"remat": True},
    }
  calls = {}
  for name, options in variants.items():

    def forward(p, xs, options=options):
      return gj.scan(cell, p, xs, **options)[1]

    def loss(p, xs, options=options):
      return jnp.sum(forward(p, xs, options) ** 2)

    calls[name] = _jax_pair(jax.jit(forward), jax.jit(jax.grad(loss)), params, xs)
  return calls


def bf16_errors(kind: str, shape: tuple[int, ...]) -> dict[str, float]:
  """How far ``matmul_dtype=bfloat16`` lands from float32: outputs and weight gradients."""
  import jax
  import jax.numpy as jnp

  import gatejax as gj

  B, T, I, H = shape
  cell = gj.lstm(H) if kind == "lstm" else gj.gru(H)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (T, B, I))

  def run(p, xs, low):
    options = {"matmul_dtype": jnp.bfloat16} if low else {}
    ys = gj.scan(cell, p, xs, **options)[1]
    return ys, jax.grad(lambda p: jnp.sum(gj.scan(cell, p, xs, **options)[1] ** 2))(p)

  run = jax.jit(run, static_argnums=2)
  (ys32, g32), (ys16, g16) = run(params, xs, False), run(params, xs, True)
  rel = lambda a, b: float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
  leaves = zip(jax.tree.leaves(g32), jax.tree.leaves(g16), strict=True)
  return {
    "ys_max_abs": float(jnp.max(jnp.abs(ys16 - ys32))),
    "ys_rel_l2": rel(ys32, ys16),
    "grad_rel_l2_max": max(rel(a, b) for a, b in leaves),
  }


FLOOR_N = 2048


def floor_calls() -> dict[str, Callable]:
  """A float32 ``2048 × 2048 @ 2048 × 2048`` matmul, timed in the same rounds as the layers.

  Its rate (FLOP/s) is what this machine does at best, now; a layer's *floor* is its
  matmul FLOPs at that rate (:func:`matmul_flops`): no implementation of the same
  arithmetic can go below it.
  """
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (FLOOR_N, FLOOR_N), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (FLOOR_N, FLOOR_N), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  call = lambda: jax.block_until_ready(matmul(a, b))
  return {"matmul": (call, call)}


def matmul_flops(kind: str, shape: tuple[int, ...]) -> dict[str, float]:
  """The matmul FLOPs of one layer: forward ``2·T·B·(I + H)·G·H`` (input and recurrent
  projections of ``G`` gate blocks); forward+backward three times that (the weight
  gradients and the input and carry gradients are two more products of the same size)."""
  B, T, I, H = shape
  gates = 4 if kind == "lstm" else 3
  forward = 2.0 * T * B * (I + H) * gates * H
  return {"fwd": forward, "fwd+bwd": 3 * forward}


def floors(kind: str, shape: tuple[int, ...], timings: dict[str, dict[str, float]]) -> dict:
  """The floor (ms) of each mode at the rate the 2048³ matmul reached in this run."""
  seconds = timings["matmul | fwd"]["median_ms"] / 1e3
  rate = 2.0 * FLOOR_N**3 / seconds
  return {
    "gflops": rate / 1e9,
    **{mode: 1e3 * flops / rate for mode, flops in matmul_flops(kind, shape).items()},
  }


def _jax_pair(fwd: Callable, grad: Callable, params, xs) -> tuple[Callable, Callable]:
  import jax

  return (
    lambda: jax.block_until_ready(fwd(params, xs)),
    lambda: jax.block_until_ready(grad(params, xs)),
  )


def flax_calls(kind: str, shape: tuple[int, ...]) -> dict[str, Callable]:
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  B, T, I, H = shape
  layer = nn.RNN(nn.OptimizedLSTMCell(H) if kind == "lstm" else nn.GRUCell(H), time_major=True)
  xs = jax.random.normal(jax.random.key(1), (T, B, I))
  variables = layer.init(jax.random.key(0), xs)

  def forward(v, xs):
    return layer.apply(v, xs)

  grad = jax.grad(lambda v, xs: jnp.sum(forward(v, xs) ** 2))
  return {"flax": _jax_pair(jax.jit(forward), jax.jit(grad), variables, xs)}


def torch_calls(kind: str, shape: tuple[int, ...]) -> dict[str, Callable]:
  import torch

  B, T, I, H = shape
  device = "cuda" if torch.cuda.is_available() else "cpu"
  module = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H).to(device)
  xs = torch.randn(T, B, I, device=device)
  weights = list(module.parameters())
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def forward():
    with torch.no_grad():
      module(xs)
    sync()

  def forward_backward():
    ys, _ = module(xs)
    torch.autograd.grad((ys**2).sum(), weights)
    sync()

  return {"torch": (forward, forward_backward)}


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def interleaved(calls: dict[str, Callable], rounds: int) -> dict[str, dict[str, float]]:
  """Median and spread (ms) of each call over ``rounds`` rounds, one call of each per round."""
  for call in calls.values():  # compile and warm up
    call()
    call()
  samples: dict[str, list[float]] = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      start = time.perf_counter()
      call()
      samples[name].append(1e3 * (time.perf_counter() - start))
  return {
    name: {
      "median_ms": statistics.median(s),
      "min_ms": min(s),
      "q1_ms": statistics.quantiles(s, n=4)[0] if len(s) > 1 else s[0],
      "q3_ms": statistics.quantiles(s, n=4)[2] if len(s) > 1 else s[0],
    }
    for name, s in samples.items()
  }


def machine() -> dict[str, object]:
  import jax

  info: dict[str, object] = {
    "backend": jax.default_backend(),
    "devices": [str(d) for d in jax.devices()],
    "jax": jax.__version__,
    "python": platform.python_version(),
    "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
  }
  try:
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
  except ImportError:
    pass
  try:
    import flax

    info["flax"] = flax.__version__
  except ImportError:
    pass
  if platform.system() == "Linux":
    with open("/proc/cpuinfo") as f:
      models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    info["cpu"] = models[0] if models else None
  return info


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.threads:
    # Before jax and torch start their thread pools: both size them from the affinity mask.
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.threads]))
  import jax

  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
  have_torch = not args.no_torch
  if have_torch:
    try:
      import torch

      torch.set_num_threads(len(os.sched_getaffinity(0)))
    except ImportError:
      have_torch = False
  backend = jax.default_backend()
  if args.shape:
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape]
  elif args.quick:
    shapes = [QUICK_SHAPE]
  else:
    shapes = GPU_SHAPES if backend == "gpu" else CPU_SHAPES
  rounds = 3 if args.quick else args.rounds
  kinds = [k.strip() for k in args.cells.split(",") if k.strip()]
  info = machine()
  print(json.dumps(info))
  results = []
  for shape in shapes:
    for kind in kinds:
      contenders = gatejax_calls(kind, shape, args.levers)
      if backend == "cpu":
        contenders |= floor_calls()
      if not args.no_flax:
        contenders |= flax_calls(kind, shape)
      if have_torch:
        contenders |= torch_calls(kind, shape)
      calls = {}
      for name, (forward, forward_backward) in contenders.items():
        calls[f"{name} | fwd"] = forward
        calls[f"{name} | fwd+bwd"] = forward_backward
      calls.pop("matmul | fwd+bwd", None)  # one matmul per round is enough
      timings = interleaved(calls, rounds)
      floor = floors(kind, shape, timings) if "matmul | fwd" in timings else None
      results.append({"shape": shape, "cell": kind, "timings": timings, "floor": floor})
      print_table(shape, kind, timings, floor)
      if args.levers:
        errors = bf16_errors(kind, shape)
        results[-1]["bf16_vs_float32"] = errors
        print("bf16 vs float32: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  suffix = "-quick" if args.quick else "-levers" if args.levers else ""
  default = os.path.join(os.path.dirname(__file__), "results", f"speed-{backend}{suffix}.json")
  path = args.json or default
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump({"machine": info, "rounds": rounds, "results": results}, f, indent=1)
  print(f"wrote {path}")
  return 0


def print_table(
  shape: tuple[int, ...],
  kind: str,
  timings: dict[str, dict[str, float]],
  floor: dict[str, float] | None = None,
) -> None:
  names = [n for n in dict.fromkeys(k.split(" | ")[0] for k in timings) if n != "matmul"]
  print(f"\n{kind.upper()}  B,T,I,H = {','.join(map(str, shape))}   (median ms [q1-q3])")
  header = f"{'':18s} {'fwd':>22s} {'fwd+bwd':>22s}   ratios fwd / fwd+bwd"
  print(header)
  if floor is not None:
    print(
      f"{'floor':18s} {floor['fwd']:8.1f} {'':13s} {floor['fwd+bwd']:8.1f}"
      f"   (2048³ matmul at {floor['gflops']:.0f} GFLOP/s this run)"
    )
  for name in names:
    row = f"{name:18s}"
    for mode in ("fwd", "fwd+bwd"):
      t = timings[f"{name} | {mode}"]
      row += f" {t['median_ms']:8.1f} [{t['q1_ms']:5.1f}-{t['q3_ms']:5.1f}]"
    ratios = []
    if floor is not None:
      r = [timings[f"{name} | {m}"]["median_ms"] / floor[m] for m in ("fwd", "fwd+bwd")]
      ratios.append(f"/floor {r[0]:.2f} {r[1]:.2f}")
    for other in ("torch", "flax"):
      if other in names and name != other:
        r = [
          timings[f"{name} | {m}"]["median_ms"] / timings[f"{other} | {m}"]["median_ms"]
          for m in ("fwd", "fwd+bwd")
        ]
        ratios.append(f"/{other} {r[0]:.2f} {r[1]:.2f}")
    print(row + "   " + "  ".join(ratios))


if __name__ == "__main__":
  sys.exit(main())
