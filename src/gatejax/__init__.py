"""gatejax: recurrent cells as pure JAX functions, and the gradient analysis that shows why gates help.

Example:
  >>> import jax, jax.numpy as jnp, gatejax as gj
  >>> cell = gj.gru(32)
  >>> params = cell.init(jax.random.key(0), input_size=8)
  >>> carry, ys = gj.scan(cell, params, jnp.zeros((100, 4, 8)))
  >>> ys.shape
  (100, 4, 32)
"""

from gatejax import cells, interop, sequence
from gatejax.cells import (
  Cell,
  Chrono,
  GRUGates,
  GRUParams,
  LSTMGates,
  LSTMParams,
  LSTMState,
  RNNParams,
  chrono,
  gru,
  lstm,
  rnn,
)
from gatejax.sequence import Bidirectional, Stack, scan, scan_stack, scan_with_gates, stack

__version__ = "0.1.0"

__all__ = [
  "Bidirectional",
  "Cell",
  "Chrono",
  "GRUGates",
  "GRUParams",
  "LSTMGates",
  "LSTMParams",
  "LSTMState",
  "RNNParams",
  "Stack",
  "cells",
  "chrono",
  "gru",
  "interop",
  "lstm",
  "rnn",
  "scan",
  "scan_stack",
  "scan_with_gates",
  "sequence",
  "stack",
]
