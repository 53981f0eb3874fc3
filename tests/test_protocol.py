"""The cell protocol (SPEC §3b): a cell written outside the library runs everywhere.

The generic suites (cells, sequence, fused, analysis) already take the registry's user
cells; here are the parts of the library that are not parametrized over the registry:
training, the NNX layer, checkpoints, jit caching, and the facts derived from a cell.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import protocol, tasks, train
from registry import BUILT_IN, make, normal, random_params
from user_cells import Janet, TwoTimescales

H, I = 4, 3


def test_the_built_in_cells_are_cells_of_the_protocol():
  for cell in (gj.rnn(2), gj.gru(2), gj.lstm(2), gj.mgu(2), gj.min_gru(2), Janet(2)):
    assert isinstance(cell, gj.CellLike) and protocol.is_cell(cell)
  assert not protocol.is_cell("gru") and not protocol.is_cell(Janet)


def test_a_user_cell_compiles_once_per_shape():
  """A frozen dataclass is hashable by value: equal cells share the jit cache of gj.scan."""
  chex.clear_trace_counter()

  @dataclasses.dataclass(frozen=True)
  class Counted(Janet):
    # Two traces in all: one checks step against initial_carry, one compiles the scan.
    @chex.assert_max_traces(n=2)
    def step(self, params, h, x):
      return Janet.step(self, params, h, x)

  for seed in range(3):  # a new but equal cell object each time, other values, same shapes
    cell = Counted(H)
    params = random_params(cell, seed, I)
    gj.scan(cell, params, jnp.ones((5, 2, I)) * seed, lengths=jnp.array([5, seed]))


@pytest.mark.parametrize("cell", [TwoTimescales(H), Janet(H)], ids=["dict", "array"])
def test_a_user_cell_trains_with_fit(cell):
  result = train.fit(
    cell, tasks.adding(6), key=jax.random.key(0), steps=30, batch_size=16, progress=False
  )
  history = result.history
  assert not history.diverged and len(history.loss) == 30
  assert history.eval_loss[-1] < history.eval_loss[0]


def test_a_user_cell_in_the_nnx_layer():
  from flax import nnx

  cell = TwoTimescales(H)
  layer = gj.nnx.Recurrent(cell, I, rngs=nnx.Rngs(0), num_layers=2)
  xs = jax.random.normal(jax.random.key(1), (5, 2, I))
  carries, ys = layer(xs, lengths=jnp.array([5, 2]))
  assert ys.shape == (5, 2, H) and carries[1]["m"].shape == (2, 2, H)
  chex.assert_trees_all_equal(
    (carries, ys), gj.scan_stack(layer.net, layer.to_params(), xs, lengths=jnp.array([5, 2]))
  )
  again = gj.nnx.Recurrent.from_params(cell, random_params(cell, 0, I))
  assert again.input_size == I  # read from the shapes of the parameters


def test_a_user_cell_checkpoints_and_refuses_another(tmp_path):
  cell, task = Janet(H), tasks.adding(5)
  opt = train.make_optimizer()
  state = train.init_state(cell, task, jax.random.key(0), opt)
  with train.Checkpoints(tmp_path, cell=cell, task=task, optimizer=opt) as ckpts:
    ckpts.save(state)
    restored = ckpts.restore()
  chex.assert_trees_all_equal(restored.state.params, state.params)
  stored = restored.metadata["cell"]
  assert stored["type"] == "user_cells.Janet" and stored["beta"] == 1.0
  with (
    train.Checkpoints(tmp_path, cell=Janet(H, beta=2.0), task=task, optimizer=opt) as other,
    pytest.raises(train.CheckpointError, match=r"cell\.beta: checkpoint has 1\.0, expected 2\.0"),
  ):
    other.restore()


def test_facts_derived_from_the_cell():
  assert protocol.input_size_of(TwoTimescales(H), random_params(TwoTimescales(H), 0, 7)) == 7
  assert (
    protocol.input_size_of(gj.minimal_rnn(H), gj.minimal_rnn(H).init(jax.random.key(0), 5)) == 5
  )
  assert protocol.keep_gate(gj.mgu(H)) == "f" and protocol.keep_gate(gj.min_gru(H)) is None
  assert protocol.describe(Janet(H)) == "Janet(hidden_size=4)"
  assert protocol.describe(gj.gru(8)) == "gj.gru(8)"
  assert protocol.config(Janet(3))["beta"] == 1.0
  # The output is read from the new carry when step returns one of its leaves as y.
  params, x = random_params(Janet(H), 0, I), jnp.ones((2, I))
  read = protocol.reader(Janet(H), params, Janet(H).initial_carry((2,)), x)
  assert read is not None
  cell = TwoTimescales(H)
  carry = cell.initial_carry((2,))
  read = protocol.reader(cell, random_params(cell, 0, I), carry, x)
  new, y = cell.step(random_params(cell, 0, I), carry, x)
  np.testing.assert_array_equal(read(params, new, x), y)


def test_a_user_cell_with_gates_reports_them():
  """``recur`` (without ``project``) and ``gate_names`` are enough for gate statistics."""

  @dataclasses.dataclass(frozen=True)
  class JanetWithGates(Janet):
    gate_names: tuple = ("f",)

    def recur(self, params, h, x):
      a = x @ params["w_x"] + h @ params["w_h"]
      s, a_c = jnp.split(a + jnp.broadcast_to(params["b"], a.shape), 2, axis=-1)
      f, i = jax.nn.sigmoid(s), 1 - jax.nn.sigmoid(s - self.beta)
      h = f * h + i * jnp.tanh(a_c)
      return h, h, {"f": f, "candidate": jnp.tanh(a_c), "i": i}

    def keep_write(self, gates):
      return gates["f"], gates["i"]

  cell = JanetWithGates(H)
  params = random_params(cell, 0, I)
  xs = jax.random.normal(jax.random.key(2), (6, 3, I))
  stats = gj.analysis.gate_statistics(cell, params, xs)
  assert set(stats.mean) == {"f"} and 0 < float(stats.mean["f"]) < 1
  # JANET's input gate 1 − σ(s − β) lets f + i exceed 1 (by up to σ(s) − σ(s − β)).
  assert 1 < float(stats.keep_plus_write.mean) < 1.5
  # The runner used recur: the same outputs as the plain Janet, whose step is the same.
  chex.assert_trees_all_close(gj.scan(cell, params, xs), gj.scan(Janet(H), params, xs), atol=1e-6)
  assert protocol.keep_gate(cell) == "f"


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_cells_optional_members_agree_with_its_step(name, x64):
  """gj.protocol.check on every built-in cell, float64 (issue 20, item 6)."""
  cell = make(name, 4)
  params = random_params(cell, 0, I, dtype=np.float64)
  xs = normal(np.random.default_rng(0), (4, 2, I), dtype=np.float64)
  protocol.check(cell, params, xs)


def test_check_names_a_recur_or_an_affine_that_disagrees_with_the_step():
  """A recur that is not the step would make gj.scan follow it while parallel_scan follows
  step; an affine that is not would make impl="associative" wrong: check says which."""
  xs = jax.random.normal(jax.random.key(1), (3, 2, I))
  gru = gj.gru(H)
  params = gru.init(jax.random.key(0), I)

  def recur(p, h, px):
    new, y, gates = gru.recur(p, h, px)
    return 1.1 * new, y, gates

  with pytest.raises(ValueError, match=r"recur disagrees with its step at step 0"):
    protocol.check(gru._replace(recur=recur), params, xs)
  cell = gj.min_gru(H)
  params = cell.init(jax.random.key(0), I)

  def affine(p, xs):
    a = cell.affine(p, xs)
    return dataclasses.replace(a, b=jax.tree.map(lambda b: b + 0.5, a.b))

  with pytest.raises(ValueError, match=r"affine disagrees with its step"):
    protocol.check(cell._replace(affine=affine), params, xs)
