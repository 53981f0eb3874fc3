"""Time the modern cells (issue 18): gatejax's paths against a plain ``lax.scan`` and the peers.

For every modern cell (sLSTM, mLSTM, RG-LRU, S6, LRU, DeltaNet), ``B = 8``, float32, at
``T`` in 256, 1024, 4096, forward (``ys``) and forward+backward (the gradient of
``sum(ys**2)`` with respect to the cell's parameters), in one process, every contender
compiled and warmed up first, then timed in interleaved rounds (one call of each per round,
in turn; the median over rounds), as ``speed.py``. Contenders per cell:

* ``lax.scan step``: a plain ``jax.lax.scan`` of ``cell.step`` (JAX autodiff): the baseline,
  what a user writes without gatejax's runners;
* ``gatejax``: ``gj.scan`` with its defaults (``impl="auto"``);
* ``gatejax fast``: ``impl="associative"`` (RG-LRU, S6, LRU: diagonal, affine in the carry)
  or ``impl="chunkwise"`` (mLSTM, DeltaNet);
* peers, where installed: recurrentgemma 1.0.1's JAX ``RGLRU`` (``ScanType.LINEAR_NATIVE``,
  and ``ASSOCIATIVE_NATIVE``) on the same ``u = x W_x + b_x``; mlstm-kernels 2.0.6's JAX
  ``parallel/native`` (autograd) and ``chunkwise/native`` (chunk 64, its default) on the same
  projections ``q, k, v, ĩ, f̃`` (its JAX files are loaded by path: the packages' own
  ``__init__`` files import ``jax_triton``). Each peer's projection is the same JAX code as
  gatejax's, so only the recurrence differs. Every contender's forward output is compared with
  the step loop's (``max_abs_vs_step``).

No JAX peer exists here for sLSTM (xlstm's is PyTorch/CUDA), S6 (mamba-ssm is
PyTorch/CUDA; Equinox ships no selective scan), LRU or DeltaNet (flash-linear-attention is
PyTorch/Triton): their rows compare gatejax with the step loop only.

Each round also times a float32 2048³ matmul on a CPU: its rate is the machine's speed in that
round (load changes it), printed beside each group. ``--memory`` adds XLA's compiled memory
(``jax.jit(f).lower(...).compile().memory_analysis()``, nothing is run) of forward+backward
of the chunkwise forms at several ``T`` and chunk sizes, beside the step loop and
mlstm-kernels' parallel form: a form that is ``O(T·chunk)`` has temporaries per step that do
not grow with ``T``.

Usage::

  python benchmarks/modern.py                   # the table (CPU: a few minutes)
  python benchmarks/modern.py --quick           # T = 256 only, 2 rounds: a smoke test
  python benchmarks/modern.py --memory-only     # the chunkwise memory table alone
  python benchmarks/modern.py --cells mlstm,delta_net --steps 4096 --chunks 16,32,64
  bash benchmarks/modern_gpu.sh                 # on a GPU machine: JSON to $OUT

The peers are optional: run from a venv that has ``recurrentgemma==1.0.1`` and
``mlstm-kernels==2.0.6`` (``pip install --no-deps mlstm-kernels``; it needs ``einops``) to
time them; rows of a missing peer say so. Results: a table with ratios, and JSON
(``--json``; default ``benchmarks/results/modern-<backend>[-quick].json``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

CELLS = ("slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net")
STEPS = (256, 1024, 4096)
BATCH, INPUT, HIDDEN, HEADS = 8, 64, 128, 4
FLOOR_N = 2048
# mlstm-kernels' parallel form holds (B, NH, T, T) arrays: skip it where XLA's estimate of
# its forward+backward temporaries is above this (GiB); measured anyway in --memory.
PARALLEL_LIMIT_GIB = 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names")
  parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="comma-separated T")
  parser.add_argument("--batch", type=int, default=BATCH)
  parser.add_argument("--input", type=int, default=INPUT)
  parser.add_argument("--hidden", type=int, default=HIDDEN)
  parser.add_argument(
    "--heads", type=int, default=HEADS, help="heads of sLSTM/mLSTM/DeltaNet/RG-LRU"
  )
  parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
  parser.add_argument(
    "--chunks", default="", help="also time impl='chunkwise' at these chunk sizes (e.g. 16,32)"
  )
  parser.add_argument("--quick", action="store_true", help="T = 256, 2 rounds")
  parser.add_argument("--memory", action="store_true", help="also the chunkwise memory table")
  parser.add_argument("--memory-only", action="store_true", help="only the memory table")
  parser.add_argument(
    "--memory-steps", default="1024,4096,16384", help="T values of the memory table"
  )
  parser.add_argument("--no-peers", action="store_true", help="gatejax and the step loop only")
  parser.add_argument("--threads", type=int, help="pin the process to this many cores (CPU)")
  parser.add_argument("--json", help="where to write the results")
  parser.add_argument(
    "--markdown", nargs="+", metavar="JSON", help="print earlier results as Markdown tables"
  )
  return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Cells and contenders
# ---------------------------------------------------------------------------


def make_cell(name: str, hidden: int, heads: int):
  import gatejax as gj

  if name == "slstm":
    return gj.slstm(hidden, num_heads=heads)
  if name == "mlstm":
    return gj.mlstm(hidden, num_heads=heads)
  if name == "rg_lru":
    return gj.rg_lru(hidden, num_heads=heads)
  if name == "s6":
    return gj.s6(hidden)
  if name == "lru":
    return gj.lru(hidden)
  if name == "delta_net":
    return gj.delta_net(hidden, num_heads=heads)
  raise ValueError(f"unknown cell {name!r}; choose from {CELLS}")


FAST = {"mlstm": "chunkwise", "delta_net": "chunkwise", "rg_lru": "associative"}
FAST |= {"s6": "associative", "lru": "associative"}


def gatejax_forwards(name: str, cell, chunks: list[int]) -> dict[str, Callable]:
  """``{contender: forward(params, xs) -> ys}`` of the step loop and gatejax's paths."""
  import jax

  import gatejax as gj

  def step_loop(p, xs):
    carry = cell.initial_carry(xs.shape[1:-1], xs.dtype)
    return jax.lax.scan(lambda c, x: cell.step(p, c, x), carry, xs)[1]

  forwards = {"lax.scan step": step_loop, "gatejax": lambda p, xs: gj.scan(cell, p, xs)[1]}
  fast = FAST.get(name)
  if fast is not None:
    forwards[f"gatejax {fast}"] = lambda p, xs: gj.scan(cell, p, xs, impl=fast)[1]
  if fast == "chunkwise":
    for size in chunks:
      forwards[f"gatejax chunk {size}"] = lambda p, xs, size=size: gj.scan(
        cell, p, xs, impl="chunkwise", chunk_size=size
      )[1]
  return forwards


def load_mlstm_kernels() -> types.SimpleNamespace | None:
  """mlstm-kernels' JAX ``parallel/native`` and ``chunkwise/native``, loaded by path (their
  parents' ``__init__`` import ``jax_triton``); ``None`` if the package is not installed."""
  spec = importlib.util.find_spec("mlstm_kernels")
  if spec is None or not spec.submodule_search_locations:
    return None
  root = os.path.join(spec.submodule_search_locations[0], "jax")
  loaded = {}
  for part in ("parallel", "chunkwise"):
    folder = os.path.join(root, part, "native")
    name = f"_gatejax_bench_mlstm_{part}"
    package = importlib.util.spec_from_file_location(
      name, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    assert package is not None and package.loader is not None
    module = importlib.util.module_from_spec(package)
    sys.modules[name] = module
    package.loader.exec_module(module)
    loaded[part] = module
  return types.SimpleNamespace(
    parallel=loaded["parallel"].mlstm_parallel__native_autograd,
    chunkwise=loaded["chunkwise"].mlstm_chunkwise__native_autograd,
    version=importlib.metadata.version("mlstm-kernels"),
  )


def mlstm_peer_forwards(cell, kernels) -> dict[str, Callable]:
  """mlstm-kernels' forms on the cell's own projections; ``ys (T, B, H)`` as gatejax's."""
  import jax.numpy as jnp

  from gatejax.cells import xlstm

  options = cell.options
  H, NH = cell.hidden_size, options.num_heads
  K = H // NH if options.key_size is None else options.key_size

  def inputs(p, xs):
    # (T, B, NH·X) -> (B, NH, T, X); q unscaled: the kernels scale it by K^-1/2 themselves
    heads = lambda a, size: jnp.transpose(a.reshape(*a.shape[:2], NH, size), (1, 2, 0, 3))
    gate = lambda a: jnp.transpose(a, (1, 2, 0))
    q, k, v = heads(xs @ p.w_q, K), heads(xs @ p.w_k, K), heads(xs @ p.w_v, H // NH)
    a_i = gate(xlstm._kit.add_bias(xs @ p.w_i, p.b_i))
    a_f = gate(xlstm._kit.add_bias(xs @ p.w_f, p.b_f))
    return q, k, v, a_i, a_f

  def back(h):  # (B, NH, T, V) -> (T, B, NH·V)
    h = jnp.transpose(h, (2, 0, 1, 3))
    return h.reshape(*h.shape[:2], -1)

  eps = options.eps
  return {
    "mlstm-kernels parallel": lambda p, xs: back(kernels.parallel(*inputs(p, xs), eps=eps)),
    "mlstm-kernels chunkwise": lambda p, xs: back(
      kernels.chunkwise(*inputs(p, xs), eps=eps, chunk_size=64)
    ),
  }


def rglru_peer_forwards(cell) -> dict[str, Callable]:
  """recurrentgemma's ``RGLRU`` on ``u = x W_x + b_x``; positions from 1 (no reset), so the
  official layer computes the cell's equations at every step."""
  import jax
  import jax.numpy as jnp
  from recurrentgemma import common
  from recurrentgemma.jax import layers

  hidden, heads = cell.hidden_size, cell.options.num_heads
  forwards = {}
  for label, scan_type in (
    ("recurrentgemma LINEAR_NATIVE", common.ScanType.LINEAR_NATIVE),
    ("recurrentgemma ASSOCIATIVE_NATIVE", common.ScanType.ASSOCIATIVE_NATIVE),
  ):
    module = layers.RGLRU(width=hidden, num_heads=heads, scan_type=scan_type)

    def forward(p, xs, module=module):
      variables = {
        "params": {
          "a_param": p.a_param,
          "input_gate": {"w": p.input_gate_w, "b": p.input_gate_b},
          "a_gate": {"w": p.a_gate_w, "b": p.a_gate_b},
        }
      }
      u = jnp.swapaxes(xs @ p.w_x + p.b_x, 0, 1)  # batch-major, as the layer takes it
      T, B = xs.shape[0], xs.shape[1]
      pos = jnp.broadcast_to(jnp.arange(1, T + 1), (B, T))
      h0 = jnp.zeros((B, hidden), xs.dtype)
      with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        y, _ = module.apply(variables, u, pos, h0)
      return jnp.swapaxes(y, 0, 1)

    forwards[label] = forward
  return forwards


def peers(name: str, cell, want: bool) -> tuple[dict[str, Callable], dict[str, str]]:
  """Peer forwards of this cell that are installed, and a note on each that is not."""
  if not want:
    return {}, {}
  notes = {}
  if name == "rg_lru":
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rglru_peer_forwards(cell), notes
    except ImportError as error:
      notes["recurrentgemma"] = f"not installed ({error})"
  if name == "mlstm":
    try:
      kernels = load_mlstm_kernels()
    except ImportError as error:
      kernels, notes["mlstm-kernels"] = None, f"not loadable ({error})"
    if kernels is None:
      notes.setdefault("mlstm-kernels", "not installed")
      return {}, notes
    return mlstm_peer_forwards(cell, kernels), notes
  return {}, notes


def versions() -> dict[str, str | None]:
  found = {}
  for dist in ("jax", "jaxlib", "recurrentgemma", "mlstm-kernels", "flax", "numpy"):
    try:
      found[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
      found[dist] = None
  return found


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def compiled_temp_gib(fn: Callable, *args) -> float:
  stats = fn.lower(*args).compile().memory_analysis()
  return stats.temp_size_in_bytes / 2**30


def build_calls(forwards: dict[str, Callable], params, xs) -> tuple[dict, dict, dict]:
  """Jitted forward and forward+backward calls, their max |ys − step loop's ys|, skips."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  calls, errors, skipped = {}, {}, {}
  reference = None
  for label, forward in forwards.items():
    fwd = jax.jit(forward)
    grad = jax.jit(jax.grad(lambda p, xs, forward=forward: jnp.sum(forward(p, xs) ** 2)))
    if label == "mlstm-kernels parallel":
      gib = compiled_temp_gib(grad, params, xs)
      if gib > PARALLEL_LIMIT_GIB:
        skipped[label] = f"forward+backward temporaries {gib:.1f} GiB > {PARALLEL_LIMIT_GIB} GiB"
        continue
    ys = np.asarray(fwd(params, xs))
    if reference is None:
      reference = ys
    errors[label] = float(np.max(np.abs(ys - reference)))
    calls[f"{label} | fwd"] = lambda fwd=fwd: jax.block_until_ready(fwd(params, xs))
    calls[f"{label} | fwd+bwd"] = lambda grad=grad: jax.block_until_ready(grad(params, xs))
  return calls, errors, skipped


def floor_call() -> Callable:
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (FLOOR_N, FLOOR_N), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (FLOOR_N, FLOOR_N), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  return lambda: jax.block_until_ready(matmul(a, b))


def interleaved(calls: dict[str, Callable], rounds: int) -> dict[str, dict[str, float]]:
  """Median and quartiles (ms) of each call over ``rounds`` rounds, one call of each per round."""
  for call in calls.values():  # compile and warm up
    call()
    call()
  samples: dict[str, list[float]] = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      start = time.perf_counter()
      call()
      samples[name].append(1e3 * (time.perf_counter() - start))
  out = {}
  for name, s in samples.items():
    quartiles = statistics.quantiles(s, n=4) if len(s) > 1 else [s[0], s[0], s[0]]
    out[name] = {
      "median_ms": statistics.median(s),
      "min_ms": min(s),
      "q1_ms": quartiles[0],
      "q3_ms": quartiles[2],
    }
  return out


def machine() -> dict[str, Any]:
  import jax

  info: dict[str, Any] = {
    "backend": jax.default_backend(),
    "devices": [str(d) for d in jax.devices()],
    "python": platform.python_version(),
    "versions": versions(),
    "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
  }
  if platform.system() == "Linux":
    with open("/proc/cpuinfo") as f:
      models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    info["cpu"] = models[0] if models else None
  return info


def time_group(name: str, T: int, args: argparse.Namespace, chunks: list[int]) -> dict:
  import jax

  cell = make_cell(name, args.hidden, args.heads)
  params = cell.init(jax.random.key(0), args.input)
  xs = jax.random.normal(jax.random.key(1), (T, args.batch, args.input))
  forwards = gatejax_forwards(name, cell, chunks)
  extra, notes = peers(name, cell, not args.no_peers)
  forwards |= extra
  calls, errors, skipped = build_calls(forwards, params, xs)
  if jax.default_backend() == "cpu":
    calls["matmul 2048³ | fwd"] = floor_call()
  load_before = os.getloadavg()
  timings = interleaved(calls, args.rounds)
  group = {
    "cell": name,
    "steps": T,
    "timings": timings,
    "max_abs_vs_step": errors,
    "skipped": skipped,
    "missing_peers": notes,
    "load_average": [load_before, os.getloadavg()],
  }
  if "matmul 2048³ | fwd" in timings:
    group["matmul_gflops"] = 2.0 * FLOOR_N**3 / timings["matmul 2048³ | fwd"]["median_ms"] / 1e6
  return group


def print_group(group: dict) -> None:
  timings = group["timings"]
  labels = [n for n in dict.fromkeys(k.split(" | ")[0] for k in timings) if n != "matmul 2048³"]
  base = "lax.scan step"
  rate = (
    f", 2048³ matmul at {group['matmul_gflops']:.0f} GFLOP/s" if "matmul_gflops" in group else ""
  )
  load = group["load_average"]
  print(
    f"\n{group['cell']}  T = {group['steps']}  (median ms [q1-q3]; load {load[0][0]:.1f}"
    f" -> {load[1][0]:.1f}{rate})"
  )
  print(f"{'':30s} {'fwd':>22s} {'fwd+bwd':>22s}   ×step fwd / fwd+bwd   |err| vs step")
  for label in labels:
    row = f"{label:30s}"
    for mode in ("fwd", "fwd+bwd"):
      t = timings[f"{label} | {mode}"]
      row += f" {t['median_ms']:8.1f} [{t['q1_ms']:5.1f}-{t['q3_ms']:5.1f}]"
    ratio = [
      timings[f"{label} | {m}"]["median_ms"] / timings[f"{base} | {m}"]["median_ms"]
      for m in ("fwd", "fwd+bwd")
    ]
    row += f"   {ratio[0]:6.2f} {ratio[1]:6.2f}   {group['max_abs_vs_step'][label]:.1e}"
    print(row)
  for label, why in (group["skipped"] | group["missing_peers"]).items():
    print(f"{label:30s} skipped: {why}")


# ---------------------------------------------------------------------------
# Memory of the chunkwise forms
# ---------------------------------------------------------------------------


def memory_table(args: argparse.Namespace) -> list[dict]:
  """XLA's temporaries of compiled forward+backward (nothing is run) at several ``T``."""
  import jax
  import jax.numpy as jnp

  import gatejax as gj

  steps = [int(v) for v in args.memory_steps.split(",") if v]
  rows = []
  kernels = None if args.no_peers else load_mlstm_kernels()
  print(f"\nCompiled forward+backward memory, B,I,H = {args.batch},{args.input},{args.hidden}")
  print(f"{'cell':10s} {'form':28s} {'T':>6s} {'temp MiB':>10s} {'KiB per step':>13s}")
  names = [c.strip() for c in args.cells.split(",")]
  for name in [n for n in ("mlstm", "delta_net") if n in names]:
    cell = make_cell(name, args.hidden, args.heads)
    params = jax.eval_shape(lambda cell=cell: cell.init(jax.random.key(0), args.input))
    forms: dict[str, Callable] = {
      "lax.scan step": gatejax_forwards(name, cell, [])["lax.scan step"],
    }
    for size in (16, 64, 256):
      forms[f"gatejax chunkwise {size}"] = lambda p, xs, size=size, cell=cell: gj.scan(
        cell, p, xs, impl="chunkwise", chunk_size=size
      )[1]
    if name == "mlstm" and kernels is not None:
      forms |= mlstm_peer_forwards(cell, kernels)
    for label, forward in forms.items():
      for T in steps:
        if label == "mlstm-kernels chunkwise" and T > 4096:
          # its chunk loop is a Python loop (unrolled): compile time grows with T / 64
          continue
        xs = jax.ShapeDtypeStruct((T, args.batch, args.input), jnp.float32)
        grad = jax.jit(jax.grad(lambda p, xs, forward=forward: jnp.sum(forward(p, xs) ** 2)))
        stats = grad.lower(params, xs).compile().memory_analysis()
        temp = stats.temp_size_in_bytes
        row = {"cell": name, "form": label, "steps": T, "temp_bytes": temp}
        row |= {"argument_bytes": stats.argument_size_in_bytes}
        rows.append(row)
        print(f"{name:10s} {label:28s} {T:6d} {temp / 2**20:10.1f} {temp / T / 2**10:13.1f}")
  return rows


# ---------------------------------------------------------------------------


PEERS = {
  "rg_lru": ("recurrentgemma LINEAR_NATIVE", "recurrentgemma ASSOCIATIVE_NATIVE"),
  "mlstm": ("mlstm-kernels chunkwise", "mlstm-kernels parallel"),
}


def markdown(paths: list[str]) -> str:
  """Markdown tables of result files: every contender against the step loop, then gatejax's
  default and fast path against each peer (ratios of medians of the same run)."""
  groups, memory = [], []
  for path in paths:
    with open(path) as f:
      data = json.load(f)
    groups += data.get("groups", [])
    memory += data.get("memory", [])
  lines = []
  if groups:
    lines += [
      "| cell | T | contender | fwd ms | fwd+bwd ms | fwd × step | fwd+bwd × step "
      "| max abs vs step | load | 2048³ GFLOP/s |",
      "|---|---|---|---|---|---|---|---|---|---|",
    ]
    peer_rows = []
    for g in groups:
      t = g["timings"]
      labels = [n for n in dict.fromkeys(k.split(" | ")[0] for k in t) if n != "matmul 2048³"]
      med = {(n, m): t[f"{n} | {m}"]["median_ms"] for n in labels for m in ("fwd", "fwd+bwd")}
      load = f"{g['load_average'][0][0]:.1f}–{g['load_average'][1][0]:.1f}"
      rate = f"{g['matmul_gflops']:.0f}" if "matmul_gflops" in g else ""
      for n in labels:
        r = [med[n, m] / med["lax.scan step", m] for m in ("fwd", "fwd+bwd")]
        lines.append(
          f"| {g['cell']} | {g['steps']} | {n} | {med[n, 'fwd']:.1f} | {med[n, 'fwd+bwd']:.1f} "
          f"| {r[0]:.2f} | {r[1]:.2f} | {g['max_abs_vs_step'][n]:.1e} | {load} | {rate} |"
        )
      for n, why in (g.get("skipped", {}) | g.get("missing_peers", {})).items():
        lines.append(f"| {g['cell']} | {g['steps']} | {n} | skipped: {why} | | | | | | |")
      ours = [n for n in labels if n.startswith("gatejax") and "chunk " not in n]
      for peer in PEERS.get(g["cell"], ()):
        if peer not in labels:
          continue
        for n in ours:
          r = [med[n, m] / med[peer, m] for m in ("fwd", "fwd+bwd")]
          peer_rows.append(
            f"| {g['cell']} | {g['steps']} | {n} / {peer} | {r[0]:.2f} | {r[1]:.2f} |"
          )
    if peer_rows:
      lines += ["", "| cell | T | ratio | fwd | fwd+bwd |", "|---|---|---|---|---|", *peer_rows]
  if memory:
    lines += [
      "",
      "| cell | form | T | temporaries MiB | KiB per step |",
      "|---|---|---|---|---|",
    ]
    for row in memory:
      temp = row["temp_bytes"]
      lines.append(
        f"| {row['cell']} | {row['form']} | {row['steps']} | {temp / 2**20:.1f} "
        f"| {temp / row['steps'] / 2**10:.1f} |"
      )
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  if args.markdown:
    print(markdown(args.markdown))
    return 0
  if args.threads:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.threads]))
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
  import jax

  if args.quick:
    args.steps, args.rounds = "256", 2
  steps = [int(v) for v in args.steps.split(",") if v]
  chunks = [int(v) for v in args.chunks.split(",") if v]
  names = [c.strip() for c in args.cells.split(",") if c.strip()]
  for name in names:
    if name not in CELLS:
      raise ValueError(f"--cells: unknown cell {name!r}; choose from {CELLS}")
  backend = jax.default_backend()
  info = machine()
  print(json.dumps(info))
  started = time.perf_counter()
  results = {
    "machine": info,
    "shape": {"batch": args.batch, "input": args.input, "hidden": args.hidden, "heads": args.heads},
    "rounds": args.rounds,
    "groups": [],
  }
  if not args.memory_only:
    for T in steps:
      for name in names:
        group = time_group(name, T, args, chunks)
        results["groups"].append(group)
        print_group(group)
  if args.memory or args.memory_only:
    results["memory"] = memory_table(args)
  results["load_average_end"] = os.getloadavg()
  results["wall_s"] = time.perf_counter() - started
  print(f"\nwall {results['wall_s']:.0f} s, load average at the end {results['load_average_end']}")
  suffix = "-quick" if args.quick else "-memory" if args.memory_only else ""
  default = os.path.join(os.path.dirname(__file__), "results", f"modern-{backend}{suffix}.json")
  path = args.json or default
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
