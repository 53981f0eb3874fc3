"""One registry of every cell variant; generic suites parametrize over it.

Each entry is ``name -> factory`` where ``factory(hidden_size)`` builds the cell, so suites
can pick their own sizes. Add a variant here and every generic test (shapes, dtypes, jit,
vmap, scan, stacks, the fast paths, analysis, training) covers it, and the entry's reference
(one NumPy function per family, tests/references.py) is what the cell suites compare with:

* ``CLASSIC``: the RNN, GRU (both conventions) and LSTM, with default and unusual gate and
  candidate functions;
* ``MINIMAL``: MGU (with and without its reset gate), minimalRNN, minGRU and minLSTM (each
  also with ``negative_eigenvalues``);
* ``MODERN``: the gated recurrences of SPEC §3d, against transcriptions of official code;
* ``USER``: cells written outside the library as frozen dataclasses with four members
  (tests/user_cells.py): one with a dict carry of two leaf shapes, one with an array carry.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj
import official_steps
import references
from references import half_tanh
from user_cells import Janet, TwoTimescales


class Entry(NamedTuple):
  """A registered cell: ``make(hidden_size) -> cell`` and its float64 NumPy reference step
  ``reference(cell, params, carry, x) -> (carry, y)`` (tests/references.py)."""

  make: Callable[[int], Any]
  reference: Callable[..., tuple[Any, Any]]


CLASSIC = {
  "rnn_tanh": Entry(lambda hidden: gj.rnn(hidden), references.rnn),
  "rnn_relu": Entry(lambda hidden: gj.rnn(hidden, activation=jax.nn.relu), references.rnn),
  "gru_after": Entry(lambda hidden: gj.gru(hidden, reset="after"), references.gru),
  "gru_before": Entry(lambda hidden: gj.gru(hidden, reset="before"), references.gru),
  "lstm": Entry(lambda hidden: gj.lstm(hidden), references.lstm),
  "lstm_custom": Entry(
    lambda hidden: gj.lstm(hidden, gate_fn=jax.nn.hard_sigmoid, activation=jax.nn.soft_sign),
    references.lstm,
  ),
  "gru_custom": Entry(
    lambda hidden: gj.gru(hidden, gate_fn=half_tanh, activation=jnp.sin), references.gru
  ),
}
MINIMAL = {
  "mgu": Entry(lambda hidden: gj.mgu(hidden), references.mgu),
  "mgu_no_reset": Entry(lambda hidden: gj.mgu(hidden, reset_gate=False), references.mgu),
  "minimal_rnn": Entry(lambda hidden: gj.minimal_rnn(hidden), references.minimal_rnn),
  "min_gru": Entry(lambda hidden: gj.min_gru(hidden), references.min_gru),
  "min_gru_negative": Entry(
    lambda hidden: gj.min_gru(hidden, negative_eigenvalues=True), references.min_gru
  ),
  "min_lstm": Entry(lambda hidden: gj.min_lstm(hidden), references.min_lstm),
  "min_lstm_negative": Entry(
    lambda hidden: gj.min_lstm(hidden, negative_eigenvalues=True), references.min_lstm
  ),
}


# The modern gated recurrences (SPEC §3d), each against the transcription of its official code.
MODERN = {
  # xLSTM: sLSTM, mLSTM (two heads where the suite's hidden size is even)
  "slstm": Entry(
    lambda hidden: gj.slstm(hidden, num_heads=2 if hidden % 2 == 0 else 1),
    references.official(official_steps.slstm_official, elementwise_n_zero=True),
  ),
  "mlstm": Entry(
    lambda hidden: gj.mlstm(hidden, num_heads=2 if hidden % 2 == 0 else 1),
    references.official(official_steps.mlstm_official),
  ),
  "mlstm_eps0": Entry(
    lambda hidden: gj.mlstm(hidden, num_heads=2 if hidden % 2 == 0 else 1, eps=0.0),
    references.official(official_steps.mlstm_official),
  ),
  # Griffin, Mamba, LRU: RG-LRU, S6, LRU
  "rg_lru": Entry(
    # two heads where the suite's hidden size allows (tests/cells/test_cells.py runs H = 5)
    lambda hidden: gj.rg_lru(hidden, num_heads=2 if hidden % 2 == 0 else 1),
    references.official(official_steps.rg_lru_official),
  ),
  "s6": Entry(
    lambda hidden: gj.s6(hidden, state_size=3), references.official(official_steps.s6_official)
  ),
  "s6_negative": Entry(
    lambda hidden: gj.s6(hidden, state_size=3, negative_eigenvalues=True),
    references.official(official_steps.s6_official),
  ),
  "lru": Entry(lambda hidden: gj.lru(hidden), references.official(official_steps.lru_official)),
  # DeltaNet, gated and not
  # Two heads where the suite's hidden size is even (heads must divide it), else one.
  "gated_delta_net": Entry(
    lambda hidden: gj.delta_net(hidden, num_heads=2 if hidden % 2 == 0 else 1),
    references.official(official_steps.gated_delta_net_official),
  ),
  "delta_net": Entry(
    lambda hidden: gj.delta_net(hidden, gated=False),
    references.official(official_steps.delta_net_official),
  ),
  "gated_delta_net_negative": Entry(
    lambda hidden: gj.delta_net(hidden, key_size=3, negative_eigenvalues=True),
    references.official(official_steps.gated_delta_net_official),
  ),
}
USER = {
  "user_dict": Entry(lambda hidden: TwoTimescales(hidden), references.user),
  "user_array": Entry(lambda hidden: Janet(hidden), references.user),
}
ENTRIES = {**CLASSIC, **MINIMAL, **MODERN, **USER}
#: name -> ``factory(hidden_size)``.
CELLS = {name: entry.make for name, entry in ENTRIES.items()}

NAMES = sorted(CELLS)
BUILT_IN = sorted({**CLASSIC, **MINIMAL, **MODERN})
# One cell per code path of the library: a split recurrence with an array carry (RNN, MGU,
# and the default GRU, whose split carries the reset product),
# the generic path of a cell without a split (GRU reset="before"), a tuple carry (LSTM), a
# nonlinear input half (minimalRNN), the associative scan (minLSTM), and the four-member
# protocol alone with a dict carry of two leaf shapes and with an array carry. The other
# variants differ from one of these only in their gate or candidate functions (or MGU's
# reset gate), which the cell suites check against NumPy; the costly suites (gradients,
# fast paths, analysis, training) run over these.
PATHS = [
  "rnn_tanh",
  "gru_after",
  "gru_before",
  "lstm",
  "mgu",
  "minimal_rnn",
  "min_lstm",
  "user_dict",
  "user_array",
]
# Cells affine in their carry (evaluated with an associative scan).
LINEAR = sorted(n for n in NAMES if getattr(CELLS[n](2), "affine", None) is not None)
# Cells with a whole-sequence chunk form (impl="chunkwise").
CHUNKWISE = sorted(n for n in NAMES if getattr(CELLS[n](4), "chunkwise", None) is not None)
# Cells with the split that the hand-written VJP and bfloat16 matmuls use.
SPLIT = sorted(n for n in NAMES if getattr(CELLS[n](2), "split", None) is not None)


def make(name: str, hidden: int = 6):
  return CELLS[name](hidden)


def reference_step(name: str, cell, params, carry, x, **functions):
  """One float64 NumPy step of the registered cell ``name`` (its entry's reference)."""
  return ENTRIES[name].reference(cell, params, carry, x, **functions)


def random_params(cell, seed: int, input_size: int, *, dtype=np.float32, scale=0.5):
  """``cell.init``'s structure with every leaf drawn as ``scale * N(0, 1)`` by NumPy.

  ``init`` leaves most biases at zero and the recurrent blocks orthogonal; a reference test
  wants every parameter to matter, so it draws them all (NumPy, so no compilation).
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
  return jax.tree.map(lambda s: normal(rng, s.shape, dtype, scale), shapes)


def random_carry(cell, seed: int, batch_shape, dtype=np.float32, scale=1.0):
  """``cell.initial_carry(batch_shape, dtype)``'s structure with every leaf drawn as
  ``scale * N(0, 1)``; a complex leaf (the LRU's) gets its real and imaginary parts so drawn."""
  rng = np.random.default_rng(seed)
  shape_of = lambda: jax.eval_shape(lambda: cell.initial_carry(tuple(batch_shape), dtype))
  if np.dtype(dtype) == np.float64:
    with jax.enable_x64(True):
      template = shape_of()
  else:
    template = shape_of()
  return jax.tree.map(lambda s: draw_like(rng, s, scale), template)


def draw_like(rng: np.random.Generator, leaf, scale: float = 1.0) -> jax.Array:
  """``scale * N(0, 1)`` draws of ``leaf``'s shape and dtype (complex: both parts drawn)."""
  if np.issubdtype(leaf.dtype, np.complexfloating):
    parts = scale * rng.standard_normal((2, *leaf.shape))
    return jnp.asarray((parts[0] + 1j * parts[1]).astype(leaf.dtype))
  return normal(rng, leaf.shape, leaf.dtype, scale)


def normal(rng: np.random.Generator, shape, dtype=np.float32, scale: float = 1.0) -> jax.Array:
  """``scale * N(0, 1)`` draws as a JAX array of ``dtype`` (drawn in float64, then rounded)."""
  return jnp.asarray((scale * rng.standard_normal(shape)).astype(dtype))


def chaotic_rnn(hidden=4, gain=3.0, steps=20, input_size=2):
  """A tanh RNN with W_h = g N(0, 1/H), g = 3, and small inputs, on two sequences: parallel_scan
  does not converge on it (tests/run/test_newton.py) and its largest Lyapunov exponent is
  positive on both sequences (tests/test_dynamics.py)."""
  rng = np.random.default_rng(5)
  params = gj.RNNParams(
    w_x=normal(rng, (input_size, hidden), "float64", 0.1),
    w_h=normal(rng, (hidden, hidden), "float64", gain / hidden**0.5),
    b=jnp.zeros(hidden, "float64"),
  )
  xs = normal(rng, (steps, 2, input_size), "float64")
  carry = normal(rng, (2, hidden), "float64", 0.5)
  return gj.rnn(hidden), params, xs, carry
