"""Data-parallel scaling of gatejax training over 1, 2, 4, ... devices.

Times :func:`gatejax.train.train_step` (the batch split over a mesh by
:func:`gatejax.train.shard_task`, the parameters replicated) on meshes of the first 1, 2, 4, ... devices, with the global batch fixed
(strong scaling: the same work split more ways) and, with ``--weak``, with the batch per
device fixed (weak scaling: more work, ideally in the same time). It also times
:func:`gatejax.train.train_many_seeds`, whose seeds are split over the devices and
never communicate. Each configuration is compiled and warmed up first; a time is the
median over rounds of ``--steps`` steps.

On a CPU the devices are forced host devices (``--xla_force_host_platform_device_count``;
the script re-executes itself with that flag when it sees fewer devices than asked for).
They share the machine's cores and XLA's thread pool, so expect little speed-up on two
cores: what this shows there is that the same code runs, and what the split costs. On a
GPU node the devices are the GPUs.

Usage::

  python benchmarks/scaling.py                      # 1, 2, 4 devices, default shape
  python benchmarks/scaling.py --quick              # small shape, few steps: a smoke test
  python benchmarks/scaling.py --devices 1,2,4,8 --batch 512 --hidden 256 --weak
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts")
  parser.add_argument("--cell", default="gru", choices=["rnn", "gru", "lstm"])
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--time", type=int, default=100, help="sequence length (adding task)")
  parser.add_argument("--batch", type=int, default=256, help="global batch (strong scaling)")
  parser.add_argument("--seeds", type=int, default=8, help="runs of the seed sweep")
  parser.add_argument("--steps", type=int, default=10, help="steps per timing round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--weak", action="store_true", help="also batch-per-device scaling")
  parser.add_argument("--quick", action="store_true", help="small shape, few rounds")
  parser.add_argument("--no-sweep", action="store_true", help="skip the seed sweep")
  parser.add_argument(
    "--watchdog", type=float, default=600, help="abort when one configuration takes longer"
  )
  parser.add_argument("--json", help="where to write the results (default scaling-<backend>.json)")
  args = parser.parse_args(argv)
  if args.quick:
    args.hidden, args.time, args.batch, args.seeds, args.steps, args.rounds = 16, 20, 32, 4, 3, 2
  args.device_counts = sorted({int(n) for n in args.devices.split(",")})
  return args


def _ensure_devices(wanted: int) -> None:
  """Re-execute with forced host devices when JAX (on CPU) would see fewer than ``wanted``."""
  if os.environ.get("_GATEJAX_SCALING_CHILD") == "1":
    return
  import jax

  if jax.device_count() >= wanted or jax.default_backend() != "cpu":
    return
  env = dict(os.environ, _GATEJAX_SCALING_CHILD="1")
  flag = f"--xla_force_host_platform_device_count={wanted}"
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
  sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))


def _median_seconds(run, rounds: int) -> float:
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  _ensure_devices(max(args.device_counts))

  import jax

  import gatejax as gj
  from gatejax import tasks, train

  available = jax.device_count()
  counts = [n for n in args.device_counts if n <= available]
  cell = {"rnn": gj.rnn, "gru": gj.gru, "lstm": gj.lstm}[args.cell](args.hidden)
  task = tasks.adding(args.time)
  opt = train.make_optimizer()
  start = train.init_state(cell, task, jax.random.key(0), opt)
  print(
    f"{jax.default_backend()} ({jax.devices()[0].device_kind}), {available} devices, "
    f"{os.cpu_count()} cores; {args.cell} hidden {args.hidden}, adding T={args.time}"
  )

  def time_steps(mesh, batch_size: int) -> float:
    sharded = train.shard_task(task, mesh)

    def run():
      state = train.replicate(start, mesh)
      for _ in range(args.steps):
        state, metrics = train.train_step(cell, sharded, opt, state, batch_size=batch_size)
      jax.block_until_ready(metrics)

    run()  # compile and warm up
    return _median_seconds(run, args.rounds) / args.steps

  faulthandler.dump_traceback_later(args.watchdog, exit=True)
  rows = []
  out = args.json or f"scaling-{jax.default_backend()}.json"

  def write() -> None:
    with open(out, "w") as f:
      json.dump(
        {
          "backend": jax.default_backend(),
          "device_kind": jax.devices()[0].device_kind,
          "devices": available,
          "cores": os.cpu_count(),
          "machine": platform.machine(),
          "args": {k: v for k, v in vars(args).items() if k != "device_counts"},
          "rows": rows,
        },
        f,
        indent=1,
      )

  def add(what: str, n: int, batch_size: int, seconds: float, work: float, base: dict) -> None:
    # speedup in throughput (work per second) over the smallest mesh; efficiency divides it
    # by the growth in devices, 1.0 being perfect scaling.
    throughput = work / seconds
    base.setdefault("throughput", throughput)
    base.setdefault("devices", n)
    speedup = throughput / base["throughput"]
    rows.append(
      {
        "what": what,
        "devices": n,
        "batch": batch_size,
        "ms": 1e3 * seconds,
        "speedup": speedup,
        "efficiency": speedup / (n / base["devices"]),
      }
    )
    print(f"  {what} on {n} devices: {1e3 * seconds:.2f} ms", flush=True)
    write()
    faulthandler.dump_traceback_later(args.watchdog, exit=True)

  modes = [("strong", lambda n: args.batch)]
  if args.weak:
    modes.append(("weak", lambda n: (args.batch // max(counts)) * n))
  for mode, batch_of in modes:
    base: dict = {}
    for n in counts:
      batch_size = batch_of(n)
      if batch_size % n:
        continue
      seconds = time_steps(train.data_mesh(n), batch_size)
      add(f"train_step ({mode})", n, batch_size, seconds, batch_size, base)

  keys = jax.random.split(jax.random.key(1), args.seeds)
  sweep_batch = max(1, args.batch // 4)
  base = {}
  for n in [] if args.no_sweep else counts:
    if args.seeds % n:
      continue
    mesh = train.data_mesh(n)

    def sweep(mesh=mesh):
      _, metrics = train.train_many_seeds(
        cell, task, keys, steps=args.steps, batch_size=sweep_batch, optimizer=opt, mesh=mesh
      )
      jax.block_until_ready(metrics)

    sweep()  # compile and warm up
    seconds = _median_seconds(sweep, args.rounds)
    add(f"{args.seeds} seeds x {args.steps} steps", n, sweep_batch, seconds, args.seeds, base)

  print(f"{'what':<28} {'devices':>7} {'batch':>6} {'ms':>10} {'speedup':>8} {'efficiency':>10}")
  for r in rows:
    print(
      f"{r['what']:<28} {r['devices']:>7} {r['batch']:>6} {r['ms']:>10.2f} "
      f"{r['speedup']:>8.2f} {r['efficiency']:>10.2f}"
    )
  faulthandler.cancel_dump_traceback_later()
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
