"""The public surface: a light import, the names of __all__, cells as hashable values."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import gatejax as gj
from registry import BUILT_IN, make

HEAVY = ["torch", "matplotlib", "orbax", "sklearn", "flax.nnx", "flax.linen"]


def modules_after(code: str) -> set[str]:
  """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
  script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
  out = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
  )
  return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_gatejax_is_light():
  loaded = modules_after("import gatejax as gj; gj.gru(4); gj.scan")
  assert {"gatejax", "gatejax.cells", "gatejax.run.scan", "jax"} <= loaded  # the probe sees
  heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
  assert not heavy, f"import gatejax loaded {heavy}"


@pytest.mark.parametrize("name", gj.__all__)
def test_all_names_exist(name):
  assert getattr(gj, name) is not None


def test_all_is_unique():
  assert len(gj.__all__) == len(set(gj.__all__))


def test_the_public_api_of_the_core():
  for name in ["rnn", "gru", "lstm", "chrono", "scan", "scan_with_gates", "stack", "scan_stack"]:
    assert callable(getattr(gj, name))
  for name in ["Cell", "LSTMState", "RNNParams", "GRUParams", "LSTMParams", "Bidirectional"]:
    assert isinstance(getattr(gj, name), type)
  interop = gj.interop
  for name in interop.__all__:
    assert callable(getattr(interop, name))


def test_unknown_attribute_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
    _ = gj.nonexistent


@pytest.mark.parametrize("name", BUILT_IN)
def test_cells_are_hashable_named_tuples(name):
  cell = make(name, 4)
  assert isinstance(cell, tuple) and hasattr(cell, "_fields")
  assert isinstance(cell, gj.Cell)
  assert cell.hidden_size == 4 and cell.name == f"gj.{cell.kind}(4)"
  assert hash(cell) == hash(cell) and cell == cell
  same = gj.Cell(*cell)  # the same fields: an equal value, so the same jit cache key
  assert same == cell and {cell: 0}[same] == 0
  with pytest.raises(AttributeError):
    cell.hidden_size = 5  # immutable


def test_a_cell_is_a_static_argument_of_jit():
  step = jax.jit(lambda cell, params, h, x: cell.step(params, h, x), static_argnums=0)
  cell = make("lstm", 3)
  params = cell.init(jax.random.key(0), 2)
  carry, y = step(cell, params, cell.initial_carry(), jnp.ones(2))
  assert isinstance(carry, gj.LSTMState) and y.shape == (3,)


def test_params_and_states_are_named_pytrees():
  params = gj.lstm(3).init(jax.random.key(0), 2)
  assert params._fields == ("w_x", "w_h", "b")
  assert gj.LSTMState._fields == ("h", "c")
  assert gj.GRUParams._fields == ("w_x", "w_h", "b_x", "b_h")
  assert gj.RNNParams._fields == ("w_x", "w_h", "b")
  doubled = jax.tree.map(lambda a: 2 * a, params)
  assert type(doubled) is gj.LSTMParams
