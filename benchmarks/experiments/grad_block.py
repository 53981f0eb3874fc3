"""Time the backward pass with its weight gradients over blocks of steps (issue 13's lever).

Needs ``grad_block.patch`` applied (``git apply benchmarks/experiments/grad_block.patch``):
it adds ``fused.Config.grad_block``. One process, the default backward (``None``) and
blocks of 8, 32 and 256 steps timed in interleaved rounds; prints each one's largest
gradient difference from the default and its median time relative to the default.
``taskset -c 0 python benchmarks/experiments/grad_block.py`` for one core.
"""

import os
import statistics
import time

import jax
import jax.numpy as jnp

import gatejax as gj
from gatejax.run import fused

B, T, I, H = 32, 256, 128, 256
BLOCKS = (None, 8, 32, 256)


def grads(cell, carry, grad_block):
  cfg = fused.Config(
    reverse=False,
    unroll=1,
    with_gates=False,
    remat=None,
    matmul_dtype=None,
    block=1,
    grad_block=grad_block,
  )

  def loss(p, xs):
    return jnp.sum(fused.run(cell, cfg, p, xs, carry, None)[1] ** 2)

  return jax.jit(jax.grad(loss))


for kind in ("lstm", "gru"):
  cell = gj.lstm(H) if kind == "lstm" else gj.gru(H)
  params = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (T, B, I))
  carry = cell.initial_carry((B,), jnp.float32)
  calls = {b: grads(cell, carry, b) for b in BLOCKS}
  for g in calls.values():
    jax.block_until_ready(g(params, xs))
    jax.block_until_ready(g(params, xs))
  want = calls[None](params, xs)
  times = {b: [] for b in calls}
  for _ in range(12):
    for b, g in calls.items():
      began = time.perf_counter()
      jax.block_until_ready(g(params, xs))
      times[b].append(time.perf_counter() - began)
  base = statistics.median(times[None])
  for b, g in calls.items():
    diff = max(
      float(jnp.max(jnp.abs(x - y)))
      for x, y in zip(jax.tree.leaves(g(params, xs)), jax.tree.leaves(want), strict=True)
    )
    ms = statistics.median(times[b])
    print(
      f"{kind} grad_block={b}: {ms * 1e3:.1f} ms, {ms / base:.3f}x the default, max |Δgrad| {diff:.1e}"
    )
print("load average", os.getloadavg())
