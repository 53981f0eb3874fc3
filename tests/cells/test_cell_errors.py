"""Bad inputs to the cell factories, ``init`` and ``step`` (SPEC §6): ValueError or TypeError
naming the argument, also when a step is called directly (no silent broadcasting of a carry,
an input or a bias of the wrong shape).

One table of :class:`error_cases.Case` (tests/error_cases.py).
"""

import jax
import jax.numpy as jnp

import gatejax as gj
from error_cases import Case, assert_unique_ids, check, parametrize
from registry import random_params

H, I, T, B = 4, 3, 5, 2

RNN, GRU, LSTM = gj.rnn(H), gj.gru(H), gj.lstm(H)
P = {cell.kind: random_params(cell, 0, I) for cell in (RNN, GRU, LSTM)}
XS = jnp.ones((T, B, I))

CASES = [
  # ---- cell factories and init
  Case("hidden_size zero", lambda: gj.rnn(0), ValueError, r"hidden_size must be >= 1, got 0"),
  Case("hidden_size float", lambda: gj.gru(2.5), TypeError, r"hidden_size must be an int"),
  Case("hidden_size bool", lambda: gj.lstm(True), TypeError, r"hidden_size must be an int"),
  Case("unknown reset", lambda: gj.gru(H, reset="middle"), ValueError, r"reset.*'middle'"),
  Case("forget_bias str", lambda: gj.lstm(H, forget_bias="1"), TypeError, r"forget_bias"),
  Case("update_bias None", lambda: gj.gru(H, update_bias=None), TypeError, r"update_bias"),
  Case("gate_fn not callable", lambda: gj.gru(H, gate_fn=1.0), TypeError, r"gate_fn"),
  Case("activation not callable", lambda: gj.rnn(H, activation="tanh"), TypeError, r"activation"),
  Case("chrono too small", lambda: gj.chrono(2), ValueError, r"max_timescale must be > 2, got 2"),
  Case("chrono str", lambda: gj.chrono("10"), TypeError, r"max_timescale must be a number"),
  Case("input_size zero", lambda: GRU.init(jax.random.key(0), 0), ValueError, r"input_size"),
  Case("input_size float", lambda: RNN.init(jax.random.key(0), 3.0), TypeError, r"input_size"),
]


# ---- a step's carry and input of the wrong shape
def _step(cell, carry, x):
  return cell.step(random_params(cell, 0, 10), carry, x)


_X, _BAD_X = jnp.ones((3, 10)), jnp.ones((3, 1))
_GOOD_H, _BAD_BATCH, _BAD_WIDTH = jnp.ones((3, 20)), jnp.ones((1, 20)), jnp.ones((3, 1))
# PyTorch's test_RNN_cell_no_broadcasting: hidden 20, input 10, batch 3; each bad shape in
# each cell, the LSTM's h and c in turn.
for _what, _bad, _x in (
  ("hidden batch 1 for input batch 3", _BAD_BATCH, _X),
  ("hidden width 1", _BAD_WIDTH, _X),
):
  for _cell, _carry in (
    (gj.rnn(20), _bad),
    (gj.gru(20), _bad),
    (gj.lstm(20), gj.LSTMState(h=_bad, c=_GOOD_H)),
    (gj.lstm(20), gj.LSTMState(h=_GOOD_H, c=_bad)),
  ):
    CASES.append(
      Case(
        f"step of {_cell.name}: {_what}"
        + (" in c" if isinstance(_carry, gj.LSTMState) and _carry.h is _GOOD_H else ""),
        lambda cell=_cell, carry=_carry, x=_x: _step(cell, carry, x),
        ValueError,
        r"carry must have shape \(3, 20\) per leaf for gj\.\w+\(20\) reading x of batch shape \(3,\)",
      )
    )
for _cell, _carry in ((gj.rnn(20), _GOOD_H), (gj.gru(20), _GOOD_H)):
  CASES.append(
    Case(
      f"step of {_cell.name}: input width 1",
      lambda cell=_cell, carry=_carry: _step(cell, carry, _BAD_X),
      ValueError,
      r"params do not fit gj\.\w+\(20\) reading x of 1 features: params\.w_x has shape \(10, ",
    )
  )


# ---- parameters of the wrong shape: a bias of shape (1,) or () is not broadcast
CASES += [
  Case(
    "bias of shape (1,)",
    lambda: gj.scan(LSTM, P["lstm"]._replace(b=jnp.zeros(1)), XS),
    ValueError,
    r"params do not fit gj\.lstm\(4\) reading 3 inputs: params\.b has shape \(1,\), expected \(16,\)",
  ),
  Case(
    "bias of shape ()",
    lambda: gj.scan(GRU, P["gru"]._replace(b_h=jnp.zeros(())), XS),
    ValueError,
    r"params\.b_h has shape \(\), expected \(12,\)",
  ),
  Case(
    "bias of another width",
    lambda: gj.scan(GRU, P["gru"]._replace(b_x=jnp.zeros(5)), XS),
    ValueError,
    r"params\.b_x has shape \(5,\), expected \(12,\)",
  ),
  Case(
    "bias (1,) in a direct step",
    lambda: LSTM.step(P["lstm"]._replace(b=jnp.zeros(1)), LSTM.initial_carry((B,)), XS[0]),
    ValueError,
    r"params\.b has shape \(1,\), expected \(16,\)",
  ),
]


@parametrize(CASES)
def test_bad_input_raises_a_clear_error(case):
  check(case)


def test_case_ids_are_unique():
  assert_unique_ids(CASES)
