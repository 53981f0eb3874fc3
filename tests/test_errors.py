"""Bad inputs (SPEC §6): each raises ValueError or TypeError at trace time, naming the argument.

One table: a case is a description, a call, the exception type and a regex that the message
must match (the argument's name, and where useful what was expected and received).
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from registry import random_params

H, I, T, B = 4, 3, 5, 2

RNN, GRU, LSTM = gj.rnn(H), gj.gru(H), gj.lstm(H)
P = {cell.kind: random_params(cell, 0, I) for cell in (RNN, GRU, LSTM)}
XS = jnp.ones((T, B, I))
BIDI = gj.stack(GRU, num_layers=2, bidirectional=True)
BIDI_PARAMS = BIDI.init(jax.random.key(0), I)
DEEP = gj.stack([LSTM, GRU])
DEEP_PARAMS = DEEP.init(jax.random.key(0), I)


class Case(NamedTuple):
  id: str
  call: Any
  error: type
  match: str


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


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_a_clear_error(case):
  with pytest.raises(case.error, match=case.match):
    case.call()


def test_case_ids_are_unique():
  assert len({c.id for c in CASES}) == len(CASES)


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


# ---------------------------------------------------------------------------
# Issue 10 (hardening): misuse of the command line (training options: tests/train)
# ---------------------------------------------------------------------------


class CliCase(NamedTuple):
  id: str
  argv: list[str]  # "{tmp}" is a fresh directory
  match: str  # the error line after "gatejax COMMAND: error: "


CLI_CASES = [
  CliCase("demo time negative", ["demo", "--time", "-3"], r"argument --time: must be an int >= 3"),
  CliCase("demo time zero", ["demo", "--time", "0"], r"argument --time: must be an int >= 3"),
  CliCase("demo time float", ["demo", "--time", "1e9"], r"argument --time: .*'1e9'"),
  CliCase("demo hidden zero", ["demo", "--hidden", "0"], r"argument --hidden: must be an int >= 1"),
  CliCase(
    "demo seed too large",
    ["demo", "--seed", str(10**20)],
    r"argument --seed: must be an int in \[0, 4294967295\] \(larger seeds repeat smaller ones\)",
  ),
  CliCase("demo seed 2**32", ["demo", "--seed", str(2**32)], r"argument --seed: must be an int in"),
  CliCase("demo seed negative", ["demo", "--seed", "-1"], r"argument --seed: must be an int in"),
  CliCase(
    "demo out of memory",
    ["demo", "--time", "1000000000"],
    r"--time 1000000000 --hidden 32 needs about [\d.]+ TB of memory, more than the .* of ",
  ),
  CliCase(
    "vanishing out of memory",
    ["vanishing", "--time", "1000000000", "--out", ""],
    r"--time 1000000000 --hidden 32 --batch 16 needs about [\d.]+ TB of memory, more than",
  ),
  CliCase(
    "vanishing time 2", ["vanishing", "--time", "2"], r"argument --time: must be an int >= 3"
  ),
  CliCase("vanishing batch 0", ["vanishing", "--batch", "0"], r"argument --batch: must be an int"),
  CliCase("vanishing seed", ["vanishing", "--seed", "-5"], r"argument --seed: must be an int in"),
  CliCase(
    "vanishing out is a directory",
    ["vanishing", "--out", "{tmp}"],
    r"--out '.*' is a directory, not a file name",
  ),
  CliCase(
    "vanishing out in a missing directory",
    ["vanishing", "--out", "{tmp}/missing/curves.png"],
    r"--out '.*': the directory '.*missing' does not exist",
  ),
  CliCase(
    "vanishing out of an unknown format",
    ["vanishing", "--out", "{tmp}/curves.xyz"],
    r"--out '.*': matplotlib cannot write \.xyz files",
  ),
  CliCase(
    "report out is a file",
    ["report", "--out", "{tmp}/file"],
    r"--out '.*file' exists and is not a directory",
  ),
  CliCase(
    "report out below a file",
    ["report", "--out", "{tmp}/file/report"],
    r"--out '.*' is not a writable directory: Not a directory",
  ),
  CliCase("report seed", ["report", "--seed", "99999999999"], r"argument --seed: must be an int"),
  CliCase("unknown command", ["fly"], r"argument COMMAND: invalid choice: 'fly'"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_command_line_misuse_is_one_error_line_and_status_2(case, tmp_path, monkeypatch, capsys):
  import re

  from gatejax import cli

  monkeypatch.chdir(tmp_path)  # a case that were not refused would write its figure here
  (tmp_path / "file").write_text("not a directory")
  (tmp_path / "earlier").mkdir()
  (tmp_path / "earlier" / "report.md").write_text("an earlier report")
  argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
  assert cli.main(argv) == 2
  out, err = capsys.readouterr()
  assert "Traceback" not in err and out == ""
  last = err.rstrip("\n").splitlines()[-1]
  command = "gatejax" if case.id == "unknown command" else f"gatejax {argv[0]}"
  assert re.match(rf"{command}: error: {case.match}", last), last
  assert sum(": error: " in line for line in err.splitlines()) == 1
  assert (tmp_path / "earlier" / "report.md").read_text() == "an earlier report"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "file"]


# ---------------------------------------------------------------------------
# Issue 10 item 4 (no silent broadcasting), item 7 (numerical edges of the analysis), and
# issue 9: cells written outside the library, checked against themselves
# ---------------------------------------------------------------------------


def _step(cell, carry, x):
  return cell.step(random_params(cell, 0, 10), carry, x)


_X, _BAD_X = jnp.ones((3, 10)), jnp.ones((3, 1))
_GOOD_H, _BAD_BATCH, _BAD_WIDTH = jnp.ones((3, 20)), jnp.ones((1, 20)), jnp.ones((3, 1))
_CELL_CASES = []
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
    _CELL_CASES.append(
      Case(
        f"step of {_cell.name}: {_what}"
        + (" in c" if isinstance(_carry, gj.LSTMState) and _carry.h is _GOOD_H else ""),
        lambda cell=_cell, carry=_carry, x=_x: _step(cell, carry, x),
        ValueError,
        r"carry must have shape \(3, 20\) per leaf for gj\.\w+\(20\) reading x of batch shape \(3,\)",
      )
    )
for _cell, _carry in ((gj.rnn(20), _GOOD_H), (gj.gru(20), _GOOD_H)):
  _CELL_CASES.append(
    Case(
      f"step of {_cell.name}: input width 1",
      lambda cell=_cell, carry=_carry: _step(cell, carry, _BAD_X),
      ValueError,
      r"params do not fit gj\.\w+\(20\) reading x of 1 features: params\.w_x has shape \(10, ",
    )
  )


@dataclasses.dataclass(frozen=True)
class _UserCell:
  """A user's cell; ``mistake`` names what its step gets wrong."""

  hidden_size: int = 4
  mistake: str = ""

  def init(self, key, input_size, *, dtype=jnp.float32):
    return {"w": jnp.zeros((input_size, self.hidden_size), dtype)}

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    if self.mistake == "carry without batch":
      return {"h": jnp.zeros((self.hidden_size,), dtype)}
    return {"h": jnp.zeros((*batch_shape, self.hidden_size), dtype)}

  def step(self, params, carry, x):
    h = jnp.tanh(x @ params["w"] + carry["h"])
    if self.mistake == "carry shape":
      return {"h": h[..., :1]}, h
    if self.mistake == "carry structure":
      return (h,), h
    if self.mistake == "carry dtype":
      return {"h": h.astype(jnp.bfloat16)}, h
    if self.mistake == "y shape":
      return {"h": h}, h[..., :2]
    if self.mistake == "no tuple":
      return h
    return {"h": h}, h


@dataclasses.dataclass
class _Unhashable:
  """``@dataclass`` without ``frozen=True``: equality defined, so ``__hash__`` is None."""

  hidden_size: int = 4
  init = _UserCell.init
  initial_carry = _UserCell.initial_carry
  step = _UserCell.step
  mistake = ""


class _NoStep:
  hidden_size = 4

  def init(self, key, input_size, *, dtype=jnp.float32):
    return {}

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, 4), dtype)


def _scan_user(mistake="", cell=None):
  cell = cell if cell is not None else _UserCell(mistake=mistake)
  params = cell.init(jax.random.key(0), I)
  return gj.scan(cell, params, XS)


_STEP = r"_UserCell\(hidden_size=4\)\.step"
_CELL_CASES += [
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
  Case(
    "carry_from_torch: c of another shape",
    lambda: gj.interop.carry_from_torch(
      gj.stack(gj.lstm(5), num_layers=2), (jnp.zeros((2, 4, 5)), jnp.zeros((7, 4, 5)))
    ),
    ValueError,
    r"hx\[1\] \(c_0\) must have the shape of hx\[0\] \(h_0\), \(2, 4, 5\), got \(7, 4, 5\)",
  ),
  Case(
    "carry_from_torch: h of another width",
    lambda: gj.interop.carry_from_torch(gj.gru(5), jnp.zeros((1, 4, 6))),
    ValueError,
    r"hx must have shape \(num_layers \* num_directions = 1, \*batch, hidden_size = 5\)",
  ),
  Case(
    "a user's step changes the carry's shape",
    lambda: _scan_user("carry shape"),
    TypeError,
    _STEP + r" returns a carry leaf float32\[2, 1\] for its initial_carry's float32\[2, 4\]",
  ),
  Case(
    "a user's step changes the carry's structure",
    lambda: _scan_user("carry structure"),
    TypeError,
    _STEP + r" returns a carry of structure .* but its initial_carry has structure",
  ),
  Case(
    "a user's step changes the carry's dtype",
    lambda: _scan_user("carry dtype"),
    TypeError,
    _STEP + r" returns a carry leaf bfloat16",
  ),
  Case(
    "a user's step returns y of another width",
    lambda: _scan_user("y shape"),
    ValueError,
    _STEP + r" must return y of shape \(\*batch, hidden_size\) = \(2, 4\), got \(2, 2\)",
  ),
  Case(
    "a user's step returns no pair",
    lambda: _scan_user("no tuple"),
    TypeError,
    _STEP + r" must return \(carry, y\)",
  ),
  Case(
    "a user's initial_carry has no batch axes",
    lambda: _scan_user("carry without batch"),
    ValueError,
    r"_UserCell\(hidden_size=4\)\.initial_carry must give leaves of shape \(\*batch, \.\.\.\) "
    r"with batch \(2,\), got a leaf of shape \(4,\)",
  ),
  Case(
    "an unhashable cell",
    lambda: _scan_user(cell=_Unhashable()),
    TypeError,
    r"cell must be hashable \(a frozen dataclass, a NamedTuple, \.\.\.\).*_Unhashable is not",
  ),
  Case(
    "a cell without step",
    lambda: gj.scan(_NoStep(), {}, XS),
    TypeError,
    r"cell must be a cell: a value with hidden_size, init, initial_carry and step .* no step",
  ),
  Case(
    "a cell class, not an instance",
    lambda: gj.scan(_UserCell, {}, XS),
    TypeError,
    r"cell must be a cell instance, got the class _UserCell",
  ),
  Case(
    "a stack layer that is not a cell",
    lambda: gj.stack([GRU, _NoStep()]),
    TypeError,
    r"cells\[1\] must be a cell: .* no step",
  ),
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
  # ---- numerical edges of the analysis (item 7)
  Case(
    "horizon of a curve with NaN",
    lambda: gj.analysis.gradient_horizon(jnp.array([1.0, jnp.nan, 2.0])),
    ValueError,
    r"norms contain NaN \(at time steps \[1\]\)",
  ),
  Case(
    "horizon of negative norms",
    lambda: gj.analysis.gradient_horizon(jnp.array([1.0, -0.5, 2.0])),
    ValueError,
    r"norms must be >= 0 \(norms\), got a minimum of -0\.5",
  ),
  Case(
    "decay_rate with start > stop",
    lambda: gj.analysis.decay_rate(jnp.ones(10), start=6, stop=3),
    ValueError,
    r"needs two of them, got start=6, stop=3",
  ),
  Case(
    "decay_rate over one step",
    lambda: gj.analysis.decay_rate(jnp.ones(10), start=3, stop=4),
    ValueError,
    r"needs two of them, got start=3, stop=4",
  ),
]


@pytest.mark.parametrize("case", _CELL_CASES, ids=[c.id for c in _CELL_CASES])
def test_cells_and_shapes_raise_clear_errors(case):
  with pytest.raises(case.error, match=case.match):
    case.call()


def test_every_case_id_is_unique():
  ids = [c.id for c in (*CASES, *CLI_CASES, *_CELL_CASES)]
  assert len(set(ids)) == len(ids)
