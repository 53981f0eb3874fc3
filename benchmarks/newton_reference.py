"""gj.parallel_scan's four methods beside the reference DEER and ELK, on their benchmarks.

The DEER/ELK benchmarks of issue 20: a tanh RNN (H = 4, T = 100, float32, ``W_h = gain ·
N(0, 1/H)``, unit-normal inputs, zero start; gains 0.5, 1, 2, 3, seed 0, as
``tests/run/test_newton.py::tanh_rnn``) and ELK's Lorenz-96 (D = 5, F = 8, T = 1,000, float64,
one Dopri5 step of 0.01 per time step, started on the attractor, as
``tests/user_cells.py::Lorenz96``). For each, every method of gatejax (sweeps to its own
convergence test, whether it says converged, its error against ``gj.scan``) beside the
reference implementation of the same method:

* DEER: machine-discovery/deer ``deer_iter.deer_iteration`` through ``fseq1d.DEER`` (clips
  each iterate to ±1e8 and sets NaN to 0; stops when ``|Δy| <= atol + rtol |y|``, here with
  ``atol = rtol`` = gatejax's default tolerance). Its sweep count is read by counting the
  iterations of its ``jax.lax.while_loop`` (a wrapper around ``jax.lax.while_loop`` adds a
  counter to the loop state; nothing else changes).
* quasi-DEER, ELK and quasi-ELK: lindermanlab/elk ``elk.algs.elk.elk_alg`` (``deer=True,
  quasi=True``; the dynamax parallel filter's filtered means; the scalar filter), run for a
  fixed number of iterations with the same first guess as gatejax (the initial carry at
  every step; dynamax 1.x with a one-line adapter of its time-varying parameters, see
  ``_dynamax_adapter``, as ELK's pinned dynamax 0.1.5 does not import with today's JAX) and ``sigmasq = 1/λ`` with gatejax's default λ; its "sweeps" are the first
  iteration whose error against ``gj.scan`` is within SPEC's tolerance (1e-4 float32, 1e-8
  float64), since it has no stopping test of its own.

The reference code is never part of this repository: fetch both repositories and point the
script at them, and run it in a scratch environment that has ``dynamax`` (ELK's filter) beside
this repository's JAX, e.g.::

  git clone https://github.com/machine-discovery/deer /tmp/refs/deer   # commit 409140f
  git clone https://github.com/lindermanlab/elk /tmp/refs/elk           # commit 58782bd
  python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install dynamax
  PYTHONPATH=src /tmp/refvenv/bin/python benchmarks/newton_reference.py \\
    --deer /tmp/refs/deer --elk /tmp/refs/elk

``--quick`` runs the RNN gains only (no Lorenz-96, the costly part: its ELK compiles for
minutes on a loaded two-core machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj
from gatejax import newton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from user_cells import Lorenz96

TOL = {"float32": 1e-4, "float64": 1e-8}  # SPEC §4b, max absolute error against gj.scan
METHODS = ("deer", "quasi", "elk", "quasi-elk")


def tanh_rnn(gain: float, seed: int = 0, steps: int = 100, dtype: str = "float32") -> tuple:
  """As tests/run/test_newton.py's ``tanh_rnn`` (with NumPy's generator, the same draws)."""
  hidden, inputs = 4, 2
  rng = np.random.default_rng(seed)

  def normal(shape, scale=1.0):
    return jnp.asarray((scale * rng.standard_normal(shape)).astype(dtype))

  params = gj.RNNParams(
    w_x=normal((inputs, hidden)),
    w_h=normal((hidden, hidden), gain / hidden**0.5),
    b=jnp.zeros(hidden, dtype),
  )
  xs = normal((steps, 1, inputs))
  return gj.rnn(hidden), params, xs, jnp.zeros((1, hidden), dtype)


def lorenz96(steps: int = 1000) -> tuple:
  cell = Lorenz96()
  carry = jnp.asarray(cell.attractor_state())[None]
  return cell, jnp.zeros((), "float64"), jnp.zeros((steps, 1, 1), "float64"), carry


# ---------------------------------------------------------------------------
# The references, imported by path
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def counted_while_loops(counts: list):
  """Count the iterations of every ``jax.lax.while_loop`` run inside (eagerly)."""
  original = jax.lax.while_loop

  def counting(cond, body, init):
    out, n = original(lambda s: cond(s[0]), lambda s: (body(s[0]), s[1] + 1), (init, 0))
    counts.append(int(n))
    return out

  jax.lax.while_loop = counting
  try:
    yield
  finally:
    jax.lax.while_loop = original


def reference_deer(cell, params, xs, carry, tol):
  """machine-discovery/deer's DEER (clip ±1e8, NaN → 0): ``(ys, sweeps, success)``."""
  from deer.fseq1d import DEER, seq1d

  def func(y, x, p):
    return cell.step(p, y, x)[0]

  steps = xs.shape[0]
  counts: list = []
  with counted_while_loops(counts):
    result = seq1d(
      func, carry[0], xs[:, 0], params, method=DEER(max_iter=steps, atol=tol, rtol=tol)
    )
  return result.value, counts[-1], bool(jnp.all(result.success))


def _dynamax_adapter() -> None:
  """ELK pins dynamax 0.1.5, which does not import with today's JAX; dynamax 1.x wants
  time-varying dynamics of length T with entry ``t`` for the transition into ``t`` (0.1.5: length
  T − 1, entry ``t`` out of ``t``). Prepend one unused entry, so 1.x reads what 0.1.5 read."""
  import elk.algs.elk as module

  if getattr(module.make_lgssm_params, "adapted", False):
    return
  original = module.make_lgssm_params

  def make_lgssm_params(**kwargs):
    for key in ("dynamics_weights", "dynamics_bias"):
      value = kwargs[key]
      kwargs[key] = jnp.concatenate([jnp.zeros_like(value[:1]), value])
    return original(**kwargs)

  make_lgssm_params.adapted = True
  module.make_lgssm_params = make_lgssm_params


def reference_elk(cell, params, xs, carry, want, tol, *, method, iters, damping):
  """lindermanlab/elk's elk_alg, ``iters`` iterations: ``(ys, first within tol or None)``."""
  from elk.algs.elk import elk_alg

  _dynamax_adapter()

  def f(y, x):
    return cell.step(params, y, x)[0]

  flags = {
    "quasi": {"deer": True, "quasi": True},
    "elk": {},
    "quasi-elk": {"quasi": True},
  }[method]
  guess = jnp.broadcast_to(carry[0], (xs.shape[0], carry.shape[-1]))
  run = jax.jit(
    lambda: elk_alg(f, carry[0], guess, xs[:, 0], sigmasq=1.0 / damping, num_iters=iters, **flags)
  )
  trace = np.asarray(run())[:, 1:]  # (iters + 1, T, D): the first guess, then each iteration
  errors = np.max(np.abs(trace - np.asarray(want)[None]), axis=(1, 2))
  errors = np.where(np.isfinite(errors), errors, np.inf)
  within = np.flatnonzero(errors <= tol)
  return trace[-1], (int(within[0]) if within.size else None), float(errors[-1])


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def error(a, b) -> float:
  diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
  return float(np.max(np.where(np.isnan(diff), np.inf, diff)))


def run_benchmark(name, problem, ref_iters, rows):
  cell, params, xs, carry = problem
  dtype = str(xs.dtype)
  tol = newton.default_tol(dtype)
  _, want = gj.scan(cell, params, xs, carry=carry)
  want = want[:, 0]
  for method in METHODS:
    start = time.perf_counter()
    _, ys, info = gj.parallel_scan(cell, params, xs, carry=carry, method=method)
    ours = (
      int(info.iterations[0]),
      bool(info.converged[0]),
      error(ys[:, 0], want),
      int(info.overflows[0]),
    )
    seconds = time.perf_counter() - start
    if method == "deer":
      ys_ref, sweeps, success = reference_deer(cell, params, xs, carry, tol)
      ref = f"{sweeps} ({'success' if success else 'no success'})", error(ys_ref, want)
    else:
      damping = newton.DEFAULT_DAMPING.get(method, 1.0)
      _, first, last_error = reference_elk(
        cell, params, xs, carry, want, TOL[dtype], method=method, iters=ref_iters, damping=damping
      )
      ref = (f"{first}" if first is not None else f"> {ref_iters}"), last_error
    rows.append((name, method, *ours, *ref, seconds))
    print(
      f"| {name} | {method} | {ours[0]} | {ours[1]} | {ours[2]:.1e} | {ours[3]} | {ref[0]} | "
      f"{ref[1]:.1e} |",
      flush=True,
    )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--deer", required=True, help="a checkout of machine-discovery/deer")
  parser.add_argument("--elk", required=True, help="a checkout of lindermanlab/elk")
  parser.add_argument("--quick", action="store_true", help="the RNN gains only")
  args = parser.parse_args()
  sys.path[:0] = [args.deer, args.elk]
  print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
  with open("/proc/cpuinfo") as info:
    models = {line.split(":", 1)[1].strip() for line in info if line.startswith("model name")}
  print(f"model: {', '.join(sorted(models))}; jax {jax.__version__}")
  print(f"load average at start: {os.getloadavg()}")
  print(
    "| benchmark | method | gatejax sweeps | converged | error vs gj.scan | overflowed sweeps "
    "| reference sweeps | reference error (last iterate) |"
  )
  print("|---|---|---|---|---|---|---|---|")
  rows: list = []
  start = time.perf_counter()
  for gain in (0.5, 1.0, 2.0, 3.0):
    run_benchmark(f"tanh RNN, gain {gain:g}", tanh_rnn(gain), 200, rows)
  if not args.quick:
    with jax.enable_x64(True):  # float64 here only: the references build float64 in x64 mode
      run_benchmark("Lorenz-96, T = 1,000", lorenz96(), 1000, rows)
  print(f"load average at end: {os.getloadavg()}; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
  main()
