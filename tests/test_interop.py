"""gj.interop against PyTorch's nn.RNN/GRU/LSTM and Flax linen's cells, both ways.

The PyTorch tests call ``require_torch()``: they skip where torch is missing, except in CI
(``GATEJAX_REQUIRE_TORCH=1``) where a missing torch fails them.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import interop
from registry import normal, random_params
from support import require_torch

T, B, I, H = 5, 3, 3, 4
TOL32 = 1e-5  # float32 (SPEC §5)


@pytest.fixture(scope="module")
def torch():
  torch = require_torch()
  torch.set_num_threads(1)  # tiny sizes, and a shared machine
  return torch


def to_numpy(tree):
  return jax.tree.map(lambda t: t.detach().numpy() if hasattr(t, "detach") else np.asarray(t), tree)


def max_abs(a, b):
  a, b = to_numpy(a), to_numpy(b)
  chex.assert_trees_all_equal_structs(a, b)
  return max(
    float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


TORCH_MODULES = {
  "rnn_tanh": lambda torch, **kw: torch.nn.RNN(I, H, nonlinearity="tanh", **kw),
  "rnn_relu": lambda torch, **kw: torch.nn.RNN(I, H, nonlinearity="relu", **kw),
  "gru": lambda torch, **kw: torch.nn.GRU(I, H, **kw),
  "lstm": lambda torch, **kw: torch.nn.LSTM(I, H, **kw),
}


def torch_module(torch, name, seed=0, **kwargs):
  torch.manual_seed(seed)
  return TORCH_MODULES[name](torch, **kwargs).eval()


def torch_state(torch, module, batch_shape, seed):
  """A random initial state in PyTorch's layout, ``(L * D, *batch, H)``."""
  g = torch.Generator().manual_seed(seed)
  shape = (module.num_layers * (2 if module.bidirectional else 1), *batch_shape, H)
  h = torch.randn(shape, generator=g)
  return (h, torch.randn(shape, generator=g)) if isinstance(module, torch.nn.LSTM) else h


def run_gatejax(net, params, xs, carry=None, lengths=None):
  if isinstance(net, gj.Cell):
    return gj.scan(net, params, xs, carry=carry, lengths=lengths)
  return gj.scan_stack(net, params, xs, carry=carry, lengths=lengths)


def assert_matches_torch(torch, module, xs, hx=None, tol=TOL32):
  """gatejax's outputs and final state equal the module's; returns the largest difference."""
  net, params = interop.from_torch(module)
  with torch.no_grad():
    out, h_n = module(torch.from_numpy(np.array(xs)), hx)
  carry = None if hx is None else interop.carry_from_torch(net, hx)
  final, ys = run_gatejax(net, params, xs, carry)
  errors = (max_abs(ys, out), max_abs(interop.carry_to_torch(net, final), h_n))
  assert max(errors) <= tol, errors
  return max(errors)


# ---------------------------------------------------------------------------
# from_torch: parity
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("name", list(TORCH_MODULES))
def test_from_torch_matches_torch(torch, name, num_layers, bidirectional):
  module = torch_module(torch, name, num_layers=num_layers, bidirectional=bidirectional)
  net, _ = interop.from_torch(module)
  if num_layers == 1 and not bidirectional:
    assert isinstance(net, gj.Cell)
  else:
    assert isinstance(net, gj.Stack) and len(net.layers) == num_layers
    assert net.bidirectional == bidirectional
  xs = normal(np.random.default_rng(1), (T, B, I))
  assert_matches_torch(torch, module, xs)  # zero initial state
  assert_matches_torch(torch, module, xs, torch_state(torch, module, (B,), seed=2))


@pytest.mark.parametrize("name", ["rnn_relu", "lstm"])
def test_from_torch_unbatched(torch, name):
  module = torch_module(torch, name, num_layers=2)
  xs = normal(np.random.default_rng(1), (T, I))
  assert_matches_torch(torch, module, xs, torch_state(torch, module, (), seed=2))


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_from_torch_without_bias(torch, name):
  module = torch_module(torch, name, bias=False)
  _, params = interop.from_torch(module)
  assert not any(np.any(np.asarray(leaf)) for leaf in params[2:])
  assert_matches_torch(torch, module, normal(np.random.default_rng(1), (T, B, I)))


def test_from_torch_batch_first_maps_the_same_weights(torch):
  module = torch_module(torch, "gru", batch_first=True, num_layers=2)
  net, params = interop.from_torch(module)
  xs = normal(np.random.default_rng(1), (B, T, I))
  with torch.no_grad():
    out, _ = module(torch.from_numpy(np.array(xs)))
  _, ys = gj.scan_stack(net, params, jnp.swapaxes(xs, 0, 1))
  assert max_abs(jnp.swapaxes(ys, 0, 1), out) <= TOL32


def test_from_torch_float64(torch, x64):
  module = torch_module(torch, "lstm").double()
  _, params = interop.from_torch(module)
  chex.assert_trees_all_equal_dtypes(params, jax.tree.map(lambda a: a.astype(jnp.float64), params))
  xs = normal(np.random.default_rng(1), (T, B, I), np.float64)
  state = jax.tree.map(lambda t: t.double(), torch_state(torch, module, (B,), seed=2))
  assert_matches_torch(torch, module, xs, state, tol=1e-12)


@pytest.mark.parametrize("name", ["lstm"])
def test_from_torch_matches_packed_sequences(torch, name):
  """Variable lengths: gj lengths against PyTorch's packed sequences, both directions."""
  from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

  module = torch_module(torch, name, num_layers=2, bidirectional=True)
  net, params = interop.from_torch(module)
  lengths = np.array([5, 2, 4])
  xs = normal(np.random.default_rng(1), (T, B, I))
  hx = torch_state(torch, module, (B,), seed=2)
  packed = pack_padded_sequence(torch.from_numpy(np.array(xs)), lengths, enforce_sorted=False)
  with torch.no_grad():
    out, h_n = module(packed, hx)
  out, _ = pad_packed_sequence(out, total_length=T)
  final, ys = gj.scan_stack(
    net, params, xs, carry=interop.carry_from_torch(net, hx), lengths=jnp.asarray(lengths)
  )
  assert max_abs(ys, out) <= TOL32
  assert max_abs(interop.carry_to_torch(net, final), h_n) <= TOL32


def test_from_torch_rejects(torch):
  with pytest.raises(TypeError, match=r"module must be a torch\.nn\.RNN"):
    interop.from_torch(torch.nn.Linear(3, 4))
  with pytest.raises(ValueError, match="proj_size=2"):
    interop.from_torch(torch.nn.LSTM(3, 4, proj_size=2))


# ---------------------------------------------------------------------------
# to_torch: the way back
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
  ("net", "layers", "bidirectional"),
  [
    (gj.rnn(H, activation=jax.nn.relu), 1, False),
    (gj.gru(H), 2, True),
    (gj.lstm(H), 2, False),
  ],
  ids=["rnn_relu", "gru_2_bi", "lstm_2"],
)
def test_to_torch_computes_the_same(torch, net, layers, bidirectional):
  if layers > 1 or bidirectional:
    net = gj.stack(net, num_layers=layers, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), I))
    params = jax.tree.map(lambda s: normal(rng, s.shape, scale=0.5), shapes)
  else:
    params = random_params(net, 0, I)
  module = interop.to_torch(net, params)
  assert not module.training and not module.batch_first
  assert (module.num_layers, module.bidirectional) == (layers, bidirectional)
  # The module's own outputs equal gatejax's.
  xs = normal(np.random.default_rng(1), (T, B, I))
  final, ys = run_gatejax(net, params, xs)
  with torch.no_grad():
    out, h_n = module(torch.from_numpy(np.array(xs)))
  assert max_abs(ys, out) <= TOL32
  assert max_abs(interop.carry_to_torch(net, final), h_n) <= TOL32
  # And from_torch gives the parameters back, exactly.
  net_back, params_back = interop.from_torch(module)
  chex.assert_trees_all_equal(params_back, params)
  first = lambda n: n.layers[0] if isinstance(n, gj.Stack) else n
  assert first(net_back).options == first(net).options


@pytest.mark.parametrize("name", list(TORCH_MODULES))
def test_torch_round_trip(torch, name):
  """``to_torch(from_torch(m))`` computes what ``m`` does, with the same weights."""
  module = torch_module(torch, name, num_layers=2, bidirectional=True)
  back = interop.to_torch(*interop.from_torch(module))
  assert type(back) is type(module) and back.mode == module.mode
  original, returned = dict(module.named_parameters()), dict(back.named_parameters())
  assert original.keys() == returned.keys()
  for key, value in original.items():
    if key.startswith("weight"):
      np.testing.assert_array_equal(returned[key].detach(), value.detach())
  for key in (k for k in original if k.startswith("bias_ih")):
    hh = key.replace("bias_ih", "bias_hh")
    if name == "gru":  # kept apart
      np.testing.assert_array_equal(returned[key].detach(), original[key].detach())
      np.testing.assert_array_equal(returned[hh].detach(), original[hh].detach())
    else:  # only the sum matters, and is kept
      total = (original[key] + original[hh]).detach().numpy()
      np.testing.assert_allclose((returned[key] + returned[hh]).detach(), total, rtol=1e-7)
  xs = torch.from_numpy(np.array(normal(np.random.default_rng(1), (T, B, I))))
  with torch.no_grad():
    assert max_abs(back(xs), module(xs)) <= 1e-6


@pytest.mark.parametrize(
  ("net", "match"),
  [
    (gj.gru(H, reset="before"), r'reset must be "after"'),
    (gj.lstm(H, gate_fn=jax.nn.relu), r"gate_fn must be jax.nn.sigmoid"),
    (gj.gru(H, activation=jax.nn.soft_sign), r"activation must be jnp.tanh"),
    (gj.rnn(H, activation=jax.nn.soft_sign), r"activation must be jnp.tanh or jax.nn.relu"),
    (gj.stack([gj.gru(H), gj.lstm(H)]), r"layers must share one kind"),
    (gj.stack([gj.gru(H), gj.gru(H + 1)]), r"layers must share one kind and hidden_size"),
  ],
  ids=["gru_before", "relu_gates", "gru_soft_sign", "rnn_soft_sign", "mixed", "sizes"],
)
def test_to_torch_rejects_what_torch_lacks(torch, net, match):
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), I))
  params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  with pytest.raises(ValueError, match=match):
    interop.to_torch(net, params)


def test_carry_from_torch_checks_the_layout(torch):
  net = gj.stack(gj.gru(H), num_layers=2, bidirectional=True)
  with pytest.raises(ValueError, match=r"hx must have shape \(num_layers \* num_directions = 4, "):
    interop.carry_from_torch(net, torch.zeros(2, B, H))
  with pytest.raises(TypeError, match=r"hx must be the pair \(h_0, c_0\)"):
    interop.carry_from_torch(gj.lstm(H), torch.zeros(1, B, H))
  carry = interop.carry_from_torch(net, torch.arange(4.0)[:, None].expand(4, H))
  # PyTorch's index is layer * num_directions + direction.
  assert [float(c[0]) for layer in carry for c in layer] == [0.0, 1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------
# Flax linen
# ---------------------------------------------------------------------------

LINEN = {
  "GRUCell": lambda **kw: nn.GRUCell(features=H, **kw),
  "LSTMCell": lambda **kw: nn.LSTMCell(features=H, **kw),
  "OptimizedLSTMCell": lambda **kw: nn.OptimizedLSTMCell(features=H, **kw),
  "SimpleCell": lambda **kw: nn.SimpleCell(features=H, **kw),
}


def run_linen(module, variables, carry, xs):
  ys, apply = [], jax.jit(module.apply)
  for x in xs:
    carry, y = apply(variables, carry, x)
    ys.append(y)
  return carry, jnp.stack(ys)


@pytest.mark.parametrize("gate_fn", [jax.nn.sigmoid, jax.nn.hard_sigmoid], ids=["sigmoid", "hard"])
@pytest.mark.parametrize("kind", list(LINEN))
def test_from_flax_linen_matches_linen(kind, gate_fn):
  extra = {} if kind == "SimpleCell" else {"gate_fn": gate_fn}
  # Non-zero biases (linen's default is zeros), so that every bias is mapped visibly.
  module = LINEN[kind](bias_init=nn.initializers.normal(0.5), **extra)
  xs = normal(np.random.default_rng(1), (T, B, I))
  flax_carry = module.initialize_carry(jax.random.key(0), xs[0].shape)
  flax_carry = jax.tree.map(lambda a: a + 0.3, flax_carry)  # a non-zero initial carry
  variables = module.init(jax.random.key(1), flax_carry, xs[0])
  cell, params = interop.from_flax_linen(module, variables)
  assert cell.kind == {"GRUCell": "gru", "SimpleCell": "rnn"}.get(kind, "lstm")
  if kind != "SimpleCell":
    assert cell.options.gate_fn is gate_fn
  expected_carry, expected_ys = run_linen(module, variables, flax_carry, xs)
  carry, ys = gj.scan(cell, params, xs, carry=interop.carry_from_flax_linen(cell, flax_carry))
  assert max_abs(ys, expected_ys) <= TOL32
  assert max_abs(interop.carry_to_flax_linen(cell, carry), expected_carry) <= TOL32
  # The params collection alone works too.
  chex.assert_trees_all_equal(interop.from_flax_linen(module, variables["params"])[1], params)


@pytest.mark.parametrize(
  "cell",
  [gj.gru(H), gj.lstm(H, gate_fn=jax.nn.hard_sigmoid), gj.rnn(H, activation=jax.nn.relu)],
  ids=["gru", "lstm_hard", "rnn_relu"],
)
def test_to_flax_linen_matches_gatejax(cell):
  params = random_params(cell, 0, I)
  module, variables = interop.to_flax_linen(cell, params)
  xs = normal(np.random.default_rng(1), (T, B, I))
  carry0 = jax.tree.map(lambda a: a + 0.3, cell.initial_carry((B,)))
  # The variables have exactly the tree linen's own init makes.
  own = module.init(jax.random.key(0), interop.carry_to_flax_linen(cell, carry0), xs[0])
  chex.assert_trees_all_equal_shapes_and_dtypes(own, variables)
  expected_carry, expected_ys = run_linen(
    module, variables, interop.carry_to_flax_linen(cell, carry0), xs
  )
  carry, ys = gj.scan(cell, params, xs, carry=carry0)
  assert max_abs(ys, expected_ys) <= TOL32
  assert max_abs(interop.carry_to_flax_linen(cell, carry), expected_carry) <= TOL32
  # Back again: the same cell, and parameters that compute the same.
  cell_back, params_back = interop.from_flax_linen(module, variables)
  assert cell_back.options == cell.options
  if cell.kind == "gru":  # linen folds the r, z blocks of b_h into b_x
    np.testing.assert_allclose(params_back.b_x + params_back.b_h, params.b_x + params.b_h)
    np.testing.assert_array_equal(params_back.b_h[2 * H :], params.b_h[2 * H :])
  else:
    chex.assert_trees_all_equal(params_back, params)


def test_flax_linen_rejects():
  with pytest.raises(ValueError, match=r'reset must be "after"'):
    interop.to_flax_linen(gj.gru(H, reset="before"), random_params(gj.gru(H), 0, I))
  with pytest.raises(TypeError, match="params must be LSTMParams"):
    interop.to_flax_linen(gj.lstm(H), random_params(gj.gru(H), 0, I))
  with pytest.raises(TypeError, match=r"module must be a flax\.linen GRUCell"):
    interop.from_flax_linen(nn.Dense(3), {})
  with pytest.raises(ValueError, match="residual=True"):
    interop.from_flax_linen(nn.SimpleCell(features=H, residual=True), {})


# ---------------------------------------------------------------------------
# MGU: Flax linen's MGUCell, both ways, with and without its reset gate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reset_gate", [True, False])
def test_mgu_equals_flax_linen_mgu_cell_both_ways(reset_gate, x64):
  """float64 to 1e-12: linen's own cell and init, converted; then gatejax's, converted back."""
  module = nn.MGUCell(
    features=H,
    reset_gate=reset_gate,
    param_dtype=jnp.float64,
    activation_bias_init=nn.initializers.normal(0.5),
    forget_bias_init=nn.initializers.normal(0.5),
  )
  xs = normal(np.random.default_rng(2), (T, B, I), np.float64)
  carry0 = module.initialize_carry(jax.random.key(0), xs[0].shape) + 0.3
  variables = module.init(jax.random.key(1), carry0, xs[0])
  cell, params = interop.from_flax_linen(module, variables)
  assert cell is gj.mgu(H, reset_gate=reset_gate)
  expected_carry, expected_ys = run_linen(module, variables, carry0, xs)
  carry, ys = gj.scan(cell, params, xs, carry=carry0)
  assert max_abs(ys, expected_ys) <= 1e-12 and max_abs(carry, expected_carry) <= 1e-12

  # Every gatejax parameter drawn; without the reset gate linen has no hn bias, and
  # to_flax_linen folds b_hn into b_xn, where it acts the same.
  params = random_params(cell, 3, I, dtype=np.float64)
  module_back, variables_back = interop.to_flax_linen(cell, params)
  own = module_back.init(jax.random.key(0), carry0, xs[0])
  chex.assert_trees_all_equal_shapes_and_dtypes(own, variables_back)
  expected_carry, expected_ys = run_linen(module_back, variables_back, carry0, xs)
  carry, ys = gj.scan(cell, params, xs, carry=carry0)
  assert max_abs(ys, expected_ys) <= 1e-12 and max_abs(carry, expected_carry) <= 1e-12
