"""Cells written outside the library, checked against the protocol (SPEC §3b, §6): a step that
changes its carry's shape, structure or dtype, returns no pair or a y of another width, an
initial_carry without batch axes, an unhashable cell, a value without ``step``, a class
instead of an instance: each a clear error naming the cell and what it got wrong.

One table of :class:`error_cases.Case` (tests/error_cases.py).
"""

import dataclasses

import jax
import jax.numpy as jnp

import gatejax as gj
from error_cases import Case, assert_unique_ids, check, parametrize

H, I, T, B = 4, 3, 5, 2

GRU = gj.gru(H)
XS = jnp.ones((T, B, I))


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
CASES = [
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
]


@parametrize(CASES)
def test_bad_input_raises_a_clear_error(case):
  check(case)


def test_case_ids_are_unique():
  assert_unique_ids(CASES)
