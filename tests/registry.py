"""One registry of every cell variant; generic suites parametrize over it.

Each entry is ``(name, factory)`` where ``factory(hidden_size)`` builds the cell,
so suites can pick their own sizes. Add a variant here and every generic test
(shapes, dtypes, jit, vmap, scan, analysis) covers it.
"""

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj

CELLS = {
  "rnn_tanh": lambda hidden: gj.rnn(hidden),
  "rnn_relu": lambda hidden: gj.rnn(hidden, activation=jax.nn.relu),
  "gru_after": lambda hidden: gj.gru(hidden, reset="after"),
  "gru_before": lambda hidden: gj.gru(hidden, reset="before"),
  "lstm": lambda hidden: gj.lstm(hidden),
}

NAMES = sorted(CELLS)


def make(name: str, hidden: int = 6) -> gj.Cell:
  return CELLS[name](hidden)


def random_params(cell: gj.Cell, seed: int, input_size: int, *, dtype=np.float32, scale=0.5):
  """``cell.init``'s structure with every leaf drawn as ``scale * N(0, 1)`` by NumPy.

  ``init`` leaves most biases at zero and the recurrent blocks orthogonal; a reference test
  wants every parameter to matter, so it draws them all (NumPy, so no compilation).
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
  return jax.tree.map(lambda s: normal(rng, s.shape, dtype, scale), shapes)


def normal(rng: np.random.Generator, shape, dtype=np.float32, scale: float = 1.0) -> jax.Array:
  """``scale * N(0, 1)`` draws as a JAX array of ``dtype`` (drawn in float64, then rounded)."""
  return jnp.asarray((scale * rng.standard_normal(shape)).astype(dtype))
