"""A long notebook session: 1,000 distinct configurations in one process, memory maps and RSS.

Each configuration is what a sweep in a notebook does: a new ``loss_fn`` lambda for the
analysis (a new static argument), a new hidden size, a new :class:`gatejax.ScanOptions`,
a new training task length. Every one compiles new programs. gatejax keeps at most
``GATEJAX_MAX_COMPILED`` of them (see ``gatejax._jit``); before that bound existed, each
compilation kept its ~80 memory maps for the life of the process, and about 770 of them
crashed the process at the kernel's limit (``vm.max_map_count``, 65,530 by default).

Usage::

  python benchmarks/long_session.py                 # 1,000 configurations
  python benchmarks/long_session.py --configs 100   # a quicker look

Prints the memory maps and resident memory every 100 configurations, and writes
``benchmarks/results/long-session.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def maps() -> int:
  with open("/proc/self/maps") as f:
    return sum(1 for _ in f)


def rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", type=int, default=1000)
  parser.add_argument(
    "--json", default=os.path.join(os.path.dirname(__file__), "results", "long-session.json")
  )
  args = parser.parse_args(argv)

  import jax
  import jax.numpy as jnp

  import gatejax as gj
  from gatejax import _jit, analysis

  xs = jax.random.normal(jax.random.key(0), (20, 4, 3))
  rows = []
  began = time.perf_counter()
  with open("/proc/sys/vm/max_map_count") as f:
    limit = f.read().strip()
  print(f"bound: {_jit.MAX_COMPILED} compiled programs; max_map_count {limit}")
  for i in range(args.configs):
    kind = i % 4
    if kind == 0:  # a new lambda each time: a new static argument of the analysis
      scale = float(i)
      norms = analysis.contribution_norms(
        gj.gru(4),
        gj.gru(4).init(jax.random.key(i), 3),
        xs,
        lambda ys, c, s=scale: s * jnp.sum(ys[-1] ** 2),
      )
      jax.block_until_ready(norms)
    elif kind == 1:  # a new hidden size: a new cell, new shapes
      cell = gj.lstm(2 + i % 97)
      jax.block_until_ready(gj.scan(cell, cell.init(jax.random.key(i), 3), xs))
    elif kind == 2:  # new options
      cell = gj.rnn(5)
      options = gj.ScanOptions(unroll=1 + i % 7, block=1 + i % 5)
      jax.block_until_ready(gj.scan(cell, cell.init(jax.random.key(i), 3), xs, options=options))
    else:  # a new sequence length through the Jacobian sweep
      cell = gj.min_gru(3)
      x = xs[: 2 + i % 19]
      jax.block_until_ready(analysis.jacobian_norms(cell, cell.init(jax.random.key(i), 3), x))
    if (i + 1) % 100 == 0 or i + 1 == args.configs:
      row = {
        "configs": i + 1,
        "maps": maps(),
        "rss_mb": round(rss_mb(), 1),
        "compiled": _jit.compiled_count(),
        "seconds": round(time.perf_counter() - began, 1),
      }
      rows.append(row)
      print(json.dumps(row), flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(
      {"bound": _jit.MAX_COMPILED, "load_average": os.getloadavg(), "rows": rows}, f, indent=1
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
