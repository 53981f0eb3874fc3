"""The library keeps a bounded number of compiled programs (issue 10, long sessions).

Every new static argument (a ``loss_fn`` lambda, say) compiles a new program; before the
bound, each kept its memory maps for the life of the process. benchmarks/long_session.py
measures 1,000 configurations; this test checks the mechanism on a few.
"""

import jax
import jax.numpy as jnp
import pytest

import gatejax as gj
from gatejax import _jit, analysis


def _maps() -> int:
  with open("/proc/self/maps") as f:
    return sum(1 for _ in f)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="Linux only")
def test_compiled_programs_are_bounded_and_their_memory_freed():
  cell = gj.gru(3)
  params = cell.init(jax.random.key(0), 2)
  xs = jnp.ones((5, 2, 2))

  def sweep(n):
    for k in range(n):
      scale = float(k)  # a new lambda: a new static argument, a new compilation
      analysis.contribution_norms(cell, params, xs, lambda ys, c, s=scale: s * jnp.sum(ys**2))

  with _jit.limit(3):
    sweep(4)  # fill the table (and JAX's caches of whatever is not ours)
    before = _maps()
    sweep(10)
    grown = _maps() - before
    assert _jit.compiled_count() <= 3
  # Each compilation of this sweep holds some 50 maps while it lives: ten kept would add
  # about 500; evicted, they are freed (a few maps of slack for allocator growth).
  assert grown < 150, grown


def test_a_static_argument_must_be_hashable():
  class Loss:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, ys, carry):
      return jnp.sum(ys)

  cell = gj.rnn(2)
  with pytest.raises(TypeError, match="loss_fn must be hashable"):
    analysis.contribution_norms(cell, cell.init(jax.random.key(0), 2), jnp.ones((3, 2)), Loss())
