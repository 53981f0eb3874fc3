"""Bad inputs to ``gj.scan``, ``gj.ScanOptions``, ``gj.stack`` and ``gj.scan_stack`` (SPEC §6):
ValueError or TypeError at trace time, naming the argument (the cell, xs, params, lengths,
carry, options, the stack's layers).

One table of :class:`error_cases.Case` (tests/error_cases.py); the edge cases that are not
errors (an empty sequence, zero lengths) beside it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from error_cases import Case, assert_unique_ids, check, parametrize
from registry import random_params

H, I, T, B = 4, 3, 5, 2

RNN, GRU, LSTM = gj.rnn(H), gj.gru(H), gj.lstm(H)
P = {cell.kind: random_params(cell, 0, I) for cell in (RNN, GRU, LSTM)}
XS = jnp.ones((T, B, I))
BIDI = gj.stack(GRU, num_layers=2, bidirectional=True)
BIDI_PARAMS = BIDI.init(jax.random.key(0), I)
DEEP = gj.stack([LSTM, GRU])
DEEP_PARAMS = DEEP.init(jax.random.key(0), I)

CASES = [
  # ---- scan: the cell and xs
  Case(
    "cell not a Cell",
    lambda: gj.scan("gru", P["gru"], XS),
    TypeError,
    r"cell must be a cell: a value with hidden_size, init, initial_carry and step",
  ),
  Case(
    "wrong input size",
    lambda: gj.scan(GRU, P["gru"], jnp.ones((T, B, I + 1))),
    ValueError,
    r"xs has input size 4 .* params expect input_size 3",
  ),
  Case("xs rank 1", lambda: gj.scan(GRU, P["gru"], jnp.ones(I)), ValueError, r"xs must have shape"),
  Case(
    "xs int", lambda: gj.scan(RNN, P["rnn"], jnp.ones((T, I), jnp.int32)), TypeError, r"xs.*float"
  ),
  Case("xs bool", lambda: gj.scan(RNN, P["rnn"], np.ones((T, I), bool)), TypeError, r"xs.*float"),
  # ---- scan: params
  Case(
    "params of another cell",
    lambda: gj.scan(LSTM, P["gru"], XS),
    TypeError,
    r"params must be LSTMParams for gj.lstm\(4\) reading 3 inputs, got GRUParams",
  ),
  Case(
    "params a dict", lambda: gj.scan(RNN, {"w_x": 1}, XS), TypeError, r"params must be RNNParams"
  ),
  Case(
    "params of another hidden size",
    lambda: gj.scan(gj.gru(H + 1), P["gru"], XS),
    ValueError,
    r"params do not fit gj.gru\(5\).*params.w_x has shape \(3, 12\), expected \(3, 15\)",
  ),
  Case(
    "params int",
    lambda: gj.scan(RNN, P["rnn"]._replace(w_x=jnp.ones((I, H), jnp.int32)), XS),
    TypeError,
    r"params.w_x must have a floating dtype",
  ),
  # ---- scan: lengths
  Case(
    "lengths wrong shape",
    lambda: gj.scan(GRU, P["gru"], XS, lengths=jnp.array([1, 2, 3])),
    ValueError,
    r"lengths must have the batch shape of xs \(2,\), got \(3,\)",
  ),
  Case(
    "lengths for unbatched xs",
    lambda: gj.scan(GRU, P["gru"], jnp.ones((T, I)), lengths=jnp.array([1])),
    ValueError,
    r"lengths must have the batch shape of xs \(\), got \(1,\)",
  ),
  Case(
    "lengths float",
    lambda: gj.scan(GRU, P["gru"], XS, lengths=jnp.array([1.0, 2.0])),
    TypeError,
    r"lengths must have an integer dtype, got float32",
  ),
  Case(
    "lengths above T",
    lambda: gj.scan(GRU, P["gru"], XS, lengths=jnp.array([T + 1, 1])),
    ValueError,
    r"lengths must lie in \[0, 5\].*got \[1, 6\]",
  ),
  Case(
    "lengths negative",
    lambda: gj.scan(LSTM, P["lstm"], XS, lengths=np.array([-1, 2])),
    ValueError,
    r"lengths must lie in \[0, 5\]",
  ),
  # ---- scan: carry
  Case(
    "LSTM carry an array",
    lambda: gj.scan(LSTM, P["lstm"], XS, carry=jnp.zeros((B, H))),
    TypeError,
    r"carry must have the structure .*LSTMState",
  ),
  Case(
    "RNN carry an LSTMState",
    lambda: gj.scan(RNN, P["rnn"], XS, carry=LSTM.initial_carry((B,))),
    TypeError,
    r"carry must have the structure",
  ),
  Case(
    "LSTM carry a bare tuple",
    lambda: gj.scan(LSTM, P["lstm"], XS, carry=(jnp.zeros((B, H)), jnp.zeros((B, H)))),
    TypeError,
    r"carry must have the structure",
  ),
  Case(
    "carry wrong batch",
    lambda: gj.scan(GRU, P["gru"], XS, carry=jnp.zeros((B + 1, H))),
    ValueError,
    r"carry must have shape \(2, 4\).*got \(3, 4\)",
  ),
  Case(
    "carry wrong hidden",
    lambda: gj.scan(LSTM, P["lstm"], XS, carry=gj.LSTMState(jnp.zeros((B, H)), jnp.zeros((B, 1)))),
    ValueError,
    r"carry must have shape \(2, 4\)",
  ),
  Case(
    "carry wrong dtype",
    lambda: gj.scan(GRU, P["gru"], XS, carry=jnp.zeros((B, H), jnp.bfloat16)),
    TypeError,
    r"carry must have dtype float32 .*got bfloat16",
  ),
  # ---- scan: options
  Case("unroll zero", lambda: gj.scan(RNN, P["rnn"], XS, unroll=0), ValueError, r"unroll"),
  Case("unroll float", lambda: gj.scan(RNN, P["rnn"], XS, unroll=1.5), ValueError, r"unroll"),
  # ---- ScanOptions
  Case("impl unknown", lambda: gj.ScanOptions(impl="cudnn"), ValueError, r"impl must be one of"),
  Case("remat zero", lambda: gj.ScanOptions(remat=0), ValueError, r"remat must be None, a bool"),
  Case("block float", lambda: gj.ScanOptions(block=2.0), ValueError, r"block must be None"),
  Case(
    "matmul_dtype int",
    lambda: gj.ScanOptions(matmul_dtype=jnp.int8),
    TypeError,
    r"matmul_dtype must be a floating dtype, got int8",
  ),
  Case(
    "options not ScanOptions",
    lambda: gj.scan(GRU, P["gru"], XS, options={"remat": 2}),
    TypeError,
    r"options must be a gj\.ScanOptions or None, got dict",
  ),
  Case(
    "associative for a nonlinear cell",
    lambda: gj.scan(GRU, P["gru"], XS, impl="associative"),
    ValueError,
    r'impl="associative" needs a cell affine in its carry .* gj\.gru\(4\) does not',
  ),
  Case(
    "associative with remat",
    lambda: gj.scan(
      gj.min_gru(4), gj.min_gru(4).init(jax.random.key(0), I), XS, impl="associative", remat=2
    ),
    ValueError,
    r"remat and matmul_dtype do not apply to it",
  ),
  # ---- stacks
  Case("num_layers zero", lambda: gj.stack(GRU, num_layers=0), ValueError, r"num_layers"),
  Case("no cells", lambda: gj.stack([]), ValueError, r"cells must hold at least one"),
  Case("cells not cells", lambda: gj.stack([GRU, "lstm"]), TypeError, r"cells\[1\] must be a cell"),
  Case(
    "num_layers disagrees",
    lambda: gj.stack([GRU, GRU], num_layers=3),
    ValueError,
    r"num_layers=3 but 2 cells",
  ),
  Case("net not a Stack", lambda: gj.scan_stack(GRU, P["gru"], XS), TypeError, r"net must be"),
  Case(
    "stack params too short",
    lambda: gj.scan_stack(DEEP, DEEP_PARAMS[:1], XS),
    ValueError,
    r"params must be a tuple of 2 layer parameters",
  ),
  Case(
    "stack params in the wrong order",
    lambda: gj.scan_stack(DEEP, DEEP_PARAMS[::-1], XS),
    TypeError,
    r"params must be LSTMParams",
  ),
  Case(
    "bidirectional params not pairs",
    lambda: gj.scan_stack(BIDI, tuple(p.forward for p in BIDI_PARAMS), XS),
    TypeError,
    r"params\[0\] of a bidirectional stack must be gj.Bidirectional",
  ),
  Case(
    "bidirectional and reverse",
    lambda: gj.scan_stack(BIDI, BIDI_PARAMS, XS, reverse=True),
    ValueError,
    r"reverse=True",
  ),
  Case(
    "stack carry too short",
    lambda: gj.scan_stack(DEEP, DEEP_PARAMS, XS, carry=DEEP.initial_carry((B,))[:1]),
    ValueError,
    r"carry must be a tuple of 2 layer carries",
  ),
  Case(
    "stack carry wrong in layer 1",
    lambda: gj.scan_stack(
      DEEP, DEEP_PARAMS, XS, carry=(LSTM.initial_carry((B,)), jnp.zeros((B, H + 1)))
    ),
    ValueError,
    r"layer 1: carry must have shape \(2, 4\)",
  ),
  Case(
    "stack lengths wrong",
    lambda: gj.scan_stack(BIDI, BIDI_PARAMS, XS, lengths=jnp.array([T, T + 2])),
    ValueError,
    r"lengths must lie in \[0, 5\]",
  ),
]


@parametrize(CASES)
def test_bad_input_raises_a_clear_error(case):
  check(case)


def test_case_ids_are_unique():
  assert_unique_ids(CASES)


def test_errors_are_raised_at_trace_time_under_jit():
  """Inside jit the checks run while tracing; traced lengths skip only the range check."""
  run = jax.jit(lambda xs, lengths: gj.scan(GRU, P["gru"], xs, lengths=lengths))
  with pytest.raises(TypeError, match="lengths must have an integer dtype"):
    run(XS, jnp.array([1.0, 2.0]))
  with pytest.raises(ValueError, match="xs has input size"):
    run(jnp.ones((T, B, I + 1)), jnp.array([1, 2]))
  run(XS, jnp.array([T + 3, 1]))  # values unknown at trace time: clamped by the mask, no error


@pytest.mark.parametrize(
  "ok",
  [
    lambda: gj.scan(GRU, P["gru"], jnp.ones((0, B, I))),
    lambda: gj.scan(GRU, P["gru"], XS, lengths=jnp.zeros(B, jnp.int32)),
    lambda: gj.scan(GRU, P["gru"], XS, lengths=[T, 0]),
    lambda: gj.scan(LSTM, P["lstm"], jnp.ones((T, I)), lengths=jnp.array(3)),
    lambda: gj.scan(RNN, P["rnn"], XS, unroll=True),
  ],
  ids=["T=0", "all lengths 0", "lengths a list", "unbatched lengths", "unroll True"],
)
def test_edge_cases_are_not_errors(ok):
  ok()
