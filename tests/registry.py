"""One registry of every cell variant; generic suites parametrize over it.

Each entry is ``(name, factory)`` where ``factory(hidden_size)`` builds the cell,
so suites can pick their own sizes. Add a variant here and every generic test
(shapes, dtypes, jit, vmap, scan, analysis) covers it.
"""

import jax

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
