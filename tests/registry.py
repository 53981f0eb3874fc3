"""One registry of every cell variant; generic suites parametrize over it.

Each entry is ``name -> factory`` where ``factory(hidden_size)`` builds the cell, so suites
can pick their own sizes. Add a variant here and every generic test (shapes, dtypes, jit,
vmap, scan, stacks, the fast paths, analysis, training) covers it. Three families:

* ``CLASSIC``: the RNN, GRU (both conventions) and LSTM, with default and unusual gate and
  candidate functions;
* ``MINIMAL``: MGU (with and without its reset gate), minimalRNN, minGRU and minLSTM;
* ``USER``: cells written outside the library as frozen dataclasses with four members
  (tests/user_cells.py): one with a dict carry of two leaf shapes, one with an array carry.
"""

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj
from references import half_tanh
from user_cells import Janet, TwoTimescales

CLASSIC = {
  "rnn_tanh": lambda hidden: gj.rnn(hidden),
  "rnn_relu": lambda hidden: gj.rnn(hidden, activation=jax.nn.relu),
  "gru_after": lambda hidden: gj.gru(hidden, reset="after"),
  "gru_before": lambda hidden: gj.gru(hidden, reset="before"),
  "lstm": lambda hidden: gj.lstm(hidden),
  "lstm_custom": lambda hidden: gj.lstm(
    hidden, gate_fn=jax.nn.hard_sigmoid, activation=jax.nn.soft_sign
  ),
  "gru_custom": lambda hidden: gj.gru(hidden, gate_fn=half_tanh, activation=jnp.sin),
}
MINIMAL = {
  "mgu": lambda hidden: gj.mgu(hidden),
  "mgu_no_reset": lambda hidden: gj.mgu(hidden, reset_gate=False),
  "minimal_rnn": lambda hidden: gj.minimal_rnn(hidden),
  "min_gru": lambda hidden: gj.min_gru(hidden),
  "min_lstm": lambda hidden: gj.min_lstm(hidden),
}
USER = {
  "user_dict": lambda hidden: TwoTimescales(hidden),
  "user_array": lambda hidden: Janet(hidden),
}
CELLS = {**CLASSIC, **MINIMAL, **USER}

NAMES = sorted(CELLS)
BUILT_IN = sorted({**CLASSIC, **MINIMAL})
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
# Cells with the split that the hand-written VJP and bfloat16 matmuls use.
SPLIT = sorted(n for n in NAMES if getattr(CELLS[n](2), "split", None) is not None)


def make(name: str, hidden: int = 6):
  return CELLS[name](hidden)


def random_params(cell, seed: int, input_size: int, *, dtype=np.float32, scale=0.5):
  """``cell.init``'s structure with every leaf drawn as ``scale * N(0, 1)`` by NumPy.

  ``init`` leaves most biases at zero and the recurrent blocks orthogonal; a reference test
  wants every parameter to matter, so it draws them all (NumPy, so no compilation).
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
  return jax.tree.map(lambda s: normal(rng, s.shape, dtype, scale), shapes)


def random_carry(cell, seed: int, batch_shape, dtype=np.float32, scale=1.0):
  """``cell.initial_carry``'s structure with every leaf drawn as ``scale * N(0, 1)``."""
  rng = np.random.default_rng(seed)
  template = jax.eval_shape(lambda: cell.initial_carry(tuple(batch_shape)))
  return jax.tree.map(lambda s: normal(rng, s.shape, dtype, scale), template)


def normal(rng: np.random.Generator, shape, dtype=np.float32, scale: float = 1.0) -> jax.Array:
  """``scale * N(0, 1)`` draws as a JAX array of ``dtype`` (drawn in float64, then rounded)."""
  return jnp.asarray((scale * rng.standard_normal(shape)).astype(dtype))
