"""sLSTM and mLSTM (src/gatejax/cells/xlstm.py) against the transcriptions of their official steps.

References: tests/official_steps.py (NumPy float64 transcriptions of xlstm 2.0.6's vanilla
``slstm_forward_pointwise`` and mlstm-kernels 2.0.6's ``mlstm_recurrent_step__native_fw``), the
values the official code itself produced (tests/data/official), a torch twin of the vanilla
sLSTM for its autograd, central differences, ``jax.jacrev`` and Python loops over ``step``.
"""

import json
import pathlib

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
import official_steps
from registry import random_params

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "official"
H, I = 4, 3
SLSTM = gj.slstm(H, num_heads=2)
MLSTM = gj.mlstm(H, num_heads=2, key_size=3)
MLSTM0 = gj.mlstm(H, num_heads=2, key_size=3, eps=0.0)
CELLS = {"slstm": SLSTM, "mlstm": MLSTM, "mlstm_eps0": MLSTM0}


def official(name, params, xs, carry=None):
  """The whole-sequence transcription of the cell's official code, float64."""
  if name == "slstm":
    return official_steps.slstm_official(params, xs, carry, elementwise_n_zero=True)
  return official_steps.mlstm_official(params, xs, carry, eps=CELLS[name].options.eps)


def draw(name, seed, *, T=9, B=3, dtype=np.float64, scale=1.0):
  """Random params (every leaf N(0, scale²)), inputs and a random carry with n > 0 (sLSTM)."""
  cell = CELLS[name]
  rng = np.random.default_rng(seed)
  params = random_params(cell, seed, I, dtype=dtype, scale=scale)
  xs = jnp.asarray(rng.standard_normal((T, B, I)).astype(dtype))
  carry = jax.tree.map(
    lambda a: jnp.asarray(rng.standard_normal(a.shape).astype(dtype)),
    cell.initial_carry((B,)),
  )
  if name == "slstm":  # a carry the cell can reach: n >= 1 in the stabilised frame
    carry = carry._replace(n=1.0 + jnp.abs(carry.n))
  return params, xs, carry


FULL = jnp.array([9, 9, 9])


def run(cell, params, xs, carry, lengths=FULL, reverse=False):
  """gj.scan as every float64 test here calls it, (9, 3, I) with a carry and lengths, so that
  the tests share their compiled programs (compilation is what costs on two cores)."""
  return gj.scan(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)


def take(tree, b):
  return jax.tree.map(lambda a: np.asarray(a)[b : b + 1], tree)


def expected_run(name, params, xs, carry, lengths, reverse):
  """Each sequence alone through the transcription, placed as gj.scan places it."""
  ys = np.zeros((*xs.shape[:2], H))
  finals = []
  for b, n in enumerate(np.asarray(lengths)):
    if n == 0:
      finals.append(tuple(take(carry, b)))
      continue
    seq = np.asarray(xs)[:n, b : b + 1]
    final, out = official(name, params, seq[::-1] if reverse else seq, take(carry, b))
    ys[:n, b] = out[::-1, 0] if reverse else out[:, 0]
    finals.append(tuple(final))
  final = jax.tree.map(lambda *a: np.concatenate(a), *finals)
  return type(CELLS[name].initial_carry())(*final), ys


def max_err(got, want):
  return max(
    float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
  )


def max_rel(got, want):
  return max(
    float(np.max(np.abs(np.asarray(g, np.float64) - w) / np.maximum(1.0, np.abs(w))))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
  )


# ---------------------------------------------------------------------------
# Against the official steps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_scan_equals_the_official_step_with_lengths(name, reverse, x64):
  """float64, 1e-12: every sequence alone (lengths 9, 4, 0), from a random carry."""
  params, xs, carry = draw(name, 0)
  lengths = jnp.array([9, 4, 0])
  final, ys = run(CELLS[name], params, xs, carry, lengths, reverse)
  want_final, want_ys = expected_run(name, params, xs, carry, lengths, reverse)
  assert max_rel(ys, want_ys) < 1e-12
  assert max_rel(final, want_final) < 1e-12


@pytest.mark.parametrize("name", sorted(CELLS))
def test_from_the_zero_carry_and_float32_error(name, x64):
  """From the zero carry (sLSTM: the n = 0 branch at step 0); float32 near float64."""
  params, xs, _ = draw(name, 1)
  want_final, want_ys = official(name, params, xs)
  final, ys = run(CELLS[name], params, xs, CELLS[name].initial_carry((3,), jnp.float64))
  assert max_rel((final, ys), (want_final, want_ys)) < 1e-12
  p32, xs32 = jax.tree.map(lambda a: a.astype(jnp.float32), (params, xs))
  want_final, want_ys = official(name, p32, xs32)  # the same float32 numbers, in float64
  final, ys = gj.scan(CELLS[name], p32, xs32)
  assert ys.dtype == jnp.float32
  assert max_rel((final, ys), (want_final, want_ys)) < 2e-5


@pytest.mark.parametrize("case", ["slstm_zero", "slstm_random", "mlstm_eps0", "mlstm_eps1e-06"])
def test_equals_the_values_the_official_code_produced(case, x64):
  """tests/data/official: xlstm's vanilla sLSTMCell and mlstm-kernels' JAX step, run upstream."""
  data = np.load(DATA / f"{case}_f64.npz")
  meta = json.loads(str(data["meta"]))
  params = {k[2:]: jnp.asarray(data[k]) for k in data.files if k.startswith("p_")}
  if case.startswith("slstm"):
    num_heads, head, _ = params["r"].shape
    cell = gj.slstm(num_heads * head, num_heads=num_heads)
    params = gj.SLSTMParams(**params)
  else:
    num_heads = params["w_i"].shape[1]
    cell = gj.mlstm(
      params["w_v"].shape[1],
      num_heads=num_heads,
      key_size=params["w_q"].shape[1] // num_heads,
      eps=meta["kwargs"]["eps"],
    )
    params = gj.MLSTMParams(**params)
  fields = cell.initial_carry()._fields
  carry = None
  if f"c0_{fields[0]}" in data.files:
    carry = type(cell.initial_carry())(*(jnp.asarray(data[f"c0_{f}"]) for f in fields))
  final, ys = gj.scan(cell, params, jnp.asarray(data["xs"]), carry=carry)
  assert max_rel(ys, data["ys"]) < 1e-12
  assert max_rel(final, tuple(data[f"c1_{f}"] for f in fields)) < 1e-12


@pytest.mark.parametrize("name", ["slstm", "mlstm"])
def test_nan_past_lengths_reaches_no_output_and_no_gradient(name, x64):
  params, xs, carry = draw(name, 2)
  lengths = jnp.array([9, 4, 0])
  t = jnp.arange(9)[:, None, None]
  dirty = jnp.where(t >= lengths[None, :, None], jnp.nan, xs)

  def loss(params, xs):
    final, ys = run(CELLS[name], params, xs, carry, lengths)
    return jnp.sum(ys**2) + sum(jnp.sum(jnp.tanh(leaf)) for leaf in jax.tree.leaves(final))

  clean, g_clean = jax.value_and_grad(loss, (0, 1))(params, xs)
  value, g = jax.value_and_grad(loss, (0, 1))(params, dirty)
  assert value == clean
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
  assert max_err(g, g_clean) < 1e-13
  assert not np.any(np.asarray(g[1])[np.asarray(t >= lengths[None, :, None])[..., 0]])


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def _small_init_ks(values, input_size):
  std = np.sqrt(2.0 / (5.0 * input_size))
  stat = official_steps.ks_statistic(values, official_steps.normal_cdf(0.0, std))
  return stat <= official_steps.ks_critical(values.size, 1e-6)


@pytest.mark.parametrize(("hidden", "num_heads"), [(8, 8), (12, 4)])
def test_slstm_official_init(hidden, num_heads, x64):
  input_size = 40
  for dtype in (jnp.float32, jnp.float64):
    params = gj.slstm(hidden, num_heads=num_heads).init(jax.random.key(0), input_size, dtype=dtype)
    assert all(a.dtype == dtype for a in params)
    official_steps.check_init(
      params, official_steps.slstm_official_init(input_size, hidden, num_heads=num_heads)
    )
    # w_x is SPEC-open: xlstm's small_init, N(0, 2 / (5 · input_size))
    assert _small_init_ks(np.asarray(params.w_x, np.float64), input_size)
  b = gj.slstm(8, num_heads=8).init(jax.random.key(0), 2).b  # D = 1: 5 (upstream: 0/0)
  np.testing.assert_array_equal(b[8:16], 5.0)
  b = gj.slstm(8, num_heads=2, forget_bias=1.5).init(jax.random.key(0), 2).b
  np.testing.assert_array_equal(b, np.r_[np.zeros(8), np.full(8, 1.5), np.zeros(16)])


@pytest.mark.parametrize(("hidden", "num_heads", "key_size"), [(8, 1, 3), (16, 4, None)])
def test_mlstm_official_init(hidden, num_heads, key_size, x64):
  input_size = 40
  cell = gj.mlstm(hidden, num_heads=num_heads, key_size=key_size)
  spec = official_steps.mlstm_official_init(
    input_size, hidden, num_heads=num_heads, key_size=key_size
  )
  for dtype in (jnp.float32, jnp.float64):
    params = cell.init(jax.random.key(0), input_size, dtype=dtype)
    assert all(a.dtype == dtype for a in params)
    official_steps.check_init(params, spec)
    for name in ("w_q", "w_k", "w_v"):  # SPEC-open: small_init
      assert _small_init_ks(np.asarray(getattr(params, name), np.float64), input_size)
  # b_i ~ N(0, 0.1²) over many draws (one per head)
  draws = np.asarray(gj.mlstm(400, num_heads=400).init(jax.random.key(1), 2).b_i, np.float64)
  stat = official_steps.ks_statistic(draws, official_steps.normal_cdf(0.0, 0.1))
  assert stat <= official_steps.ks_critical(draws.size, 1e-6)


# ---------------------------------------------------------------------------
# The protocol, the stabiliser and its gauge
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["slstm", "mlstm"])
def test_protocol_check(name, x64):
  params, xs, carry = draw(name, 3)
  gj.protocol.check(CELLS[name], params, xs[:4], carry=carry)
  gj.protocol.check(CELLS[name], params, xs[:2])


def test_mlstm_read_is_not_a_carry_leaf_and_has_its_own_shape(x64):
  params, xs, carry = draw("mlstm", 3)
  carry, y = MLSTM.step(params, carry, xs[0])
  assert y.shape == (3, H) and carry.c.shape == (3, 2, 3, 2)
  np.testing.assert_array_equal(MLSTM.read(params, carry, xs[0]), y)


def test_slstm_n_zero_branch_is_elementwise(x64):
  """Rows with an empty memory (c = n = 0) take m = ĩ; the others the max (SPEC), row by row."""
  params, xs, carry = draw("slstm", 4)
  empty = jnp.array([True, False, True])[:, None]
  carry = carry._replace(c=jnp.where(empty, 0.0, carry.c), n=jnp.where(empty, 0.0, carry.n))
  final, ys = run(SLSTM, params, xs, carry)
  want_final, want_ys = official_steps.slstm_official(params, xs, carry, elementwise_n_zero=True)
  assert max_rel((final, ys), (want_final, want_ys)) < 1e-12
  a_i = (np.asarray(SLSTM.project(params, xs[0])) + np.asarray(SLSTM.split.mix(params, carry.y)))[
    :, :H
  ]
  first, _ = SLSTM.step(params, carry, xs[0])
  np.testing.assert_array_equal(np.asarray(first.m)[[0, 2]], a_i[[0, 2]])
  # vanilla xlstm (n == 0 over the whole batch) differs only in the frame, never in y
  _, vanilla_ys = official_steps.slstm_official(params, xs, carry)
  assert max_rel(ys, vanilla_ys) < 1e-12


def test_slstm_large_negative_input_gate_from_the_zero_carry_stays_finite(x64):
  """f' = exp(logσ(f̃) − ĩ) overflows float64 at ĩ < −709: the guard keeps f'·0 = 0."""
  params, xs, _ = draw("slstm", 16)
  params = params._replace(b=params.b.at[:H].set(-1000.0))
  zero = SLSTM.initial_carry((3,), jnp.float64)

  def loss(params):
    final, ys = run(SLSTM, params, xs, zero)
    return jnp.sum(ys) + jnp.sum(final.c), ys

  (value, ys), grad = jax.value_and_grad(loss, has_aux=True)(params)
  with np.errstate(over="ignore"):  # official: exp overflows to inf, then clamped to 1
    _, want_ys = official_steps.slstm_official(params, xs)
  assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grad)
  assert max_rel(ys, want_ys) < 1e-12


@pytest.mark.parametrize("name", ["slstm", "mlstm_eps0"])
def test_output_does_not_depend_on_the_frame(name, x64):
  """(c, n, m) -> (c e^-δ, n e^-δ, m + δ) changes no output (mLSTM: with eps = 0)."""
  params, xs, carry = draw(name, 5)
  delta = jnp.asarray(np.random.default_rng(5).uniform(-3, 3, carry.m.shape))
  scale = jnp.exp(-delta)
  if name == "slstm":
    moved = carry._replace(c=carry.c * scale, n=carry.n * scale, m=carry.m + delta)
  else:
    moved = carry._replace(
      c=carry.c * scale[..., None, None], n=carry.n * scale[..., None], m=carry.m + delta
    )
  _, ys = run(CELLS[name], params, xs, carry)
  _, ys_moved = run(CELLS[name], params, xs, moved)
  assert max_rel(ys_moved, np.asarray(ys)) < 1e-12
  if name == "mlstm_eps0":  # with the official eps the output moves with the frame
    _, a = run(MLSTM, params, xs, carry)
    _, b = run(MLSTM, params, xs, moved)
    assert max_err(a, b) > 1e-9


# ---------------------------------------------------------------------------
# Gradients: the official vanilla autograd (torch), central differences
# ---------------------------------------------------------------------------


def _torch_slstm(torch, params, xs, carry):
  """The vanilla ``slstm_forward`` in torch, for its autograd (clamps and torch.all included)."""
  w_x, r, b = params
  num_heads, head, _ = r.shape
  y, c, n, m = carry
  ys = []
  for x in xs:
    ry = torch.einsum("bhk,hkj->bhj", y.reshape(-1, num_heads, head), r)
    ry = ry.reshape(-1, num_heads, 4, head).transpose(1, 2).reshape(y.shape[0], -1)
    iraw, fraw, zraw, oraw = (x @ w_x + ry + b).reshape(x.shape[0], 4, -1).unbind(1)
    logfplusm = m + torch.nn.functional.logsigmoid(fraw)
    mnew = iraw if torch.all(n == 0.0) else torch.max(iraw, logfplusm)
    igate = torch.minimum(torch.exp(iraw - mnew), torch.ones_like(iraw))
    fgate = torch.minimum(torch.exp(logfplusm - mnew), torch.ones_like(iraw))
    c = fgate * c + igate * torch.tanh(zraw)
    n = fgate * n + igate
    y = torch.sigmoid(oraw) * c / n
    m = mnew
    ys.append(y)
  return (y, c, n, m), torch.stack(ys)


@pytest.mark.parametrize("zero_carry", [False, True])
def test_slstm_gradients_equal_the_vanilla_autograd(zero_carry, x64):
  torch = pytest.importorskip("torch")
  params, xs, carry = draw("slstm", 6)
  if zero_carry:
    carry = SLSTM.initial_carry((3,), jnp.float64)
  weights = np.random.default_rng(6).standard_normal((9, 3, H))

  def loss(params, carry):
    final, ys = run(SLSTM, params, xs, carry)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(leaf)) for leaf in final)

  grads = jax.grad(loss, (0, 1))(params, carry)
  tp = [torch.tensor(np.asarray(a), requires_grad=True) for a in params]
  tc = [torch.tensor(np.asarray(a), requires_grad=True) for a in carry]
  final, ys = _torch_slstm(torch, tp, torch.tensor(np.asarray(xs)), tc)
  value = (ys * torch.tensor(weights)).sum() + sum(torch.sin(leaf).sum() for leaf in final)
  value.backward()
  want = ([a.grad.numpy() for a in tp], [a.grad.numpy() for a in tc])
  assert max_rel(grads[0], want[0]) < 1e-11
  if not zero_carry:  # from n = 0 the official clamp changes d/dc_0 (the true value is f')
    assert max_rel(grads[1], want[1]) < 1e-11


@pytest.mark.parametrize("name", ["slstm", "mlstm"])
def test_directional_derivatives_equal_central_differences(name, x64):
  params, xs, carry = draw(name, 7)
  rng = np.random.default_rng(7)
  weights = rng.standard_normal((9, 3, H))
  u = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), (params, xs, carry))

  def loss_np(p, x, c):
    final, ys = official(name, p, x, c)
    return float(np.sum(ys * weights) + sum(np.sum(np.sin(leaf)) for leaf in final))

  def loss(p, x, c):
    final, ys = run(CELLS[name], p, x, c)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(leaf)) for leaf in final)

  args = (params, xs, carry)
  g = jax.grad(loss, (0, 1, 2))(*args)
  eps = 1e-6
  for k in range(3):
    plus, minus = list(args), list(args)
    plus[k] = jax.tree.map(lambda a, d: a + eps * d, args[k], u[k])
    minus[k] = jax.tree.map(lambda a, d: a - eps * d, args[k], u[k])
    fd = (loss_np(*plus) - loss_np(*minus)) / (2 * eps)
    exact = sum(
      float(jnp.sum(a * d))
      for a, d in zip(jax.tree.leaves(g[k]), jax.tree.leaves(u[k]), strict=True)
    )
    assert abs(fd - exact) < 1e-6 * max(1.0, abs(exact)), (k, fd, exact)


# ---------------------------------------------------------------------------
# mLSTM chunkwise
# ---------------------------------------------------------------------------


def step_loop(cell, params, xs, carry, valid):
  """The reference: ``step`` after ``step`` (a compiled scan), holding the carry where
  ``valid`` is False."""

  def body(carry, inputs):
    x, keep = inputs
    new, y = cell.step(params, carry, x)
    held = jax.tree.map(
      lambda a, b: jnp.where(keep.reshape(keep.shape + (1,) * (a.ndim - keep.ndim)), a, b),
      new,
      carry,
    )
    return held, jnp.where(keep[..., None], y, 0.0)

  return jax.lax.scan(body, carry, (xs, valid))


def _valid(T, lengths, reverse=False):
  valid = np.arange(T)[:, None] < np.asarray(lengths)[None, :]
  return jnp.asarray(valid[::-1] if reverse else valid)  # reversed: the padding comes first


@pytest.mark.parametrize(
  ("name", "T", "chunk", "gates"),
  [
    ("mlstm", 13, 4, "large"),  # odd T; input gates ~ 3 N(0,1): eps matters, frames must agree
    ("mlstm_eps0", 9, None, "official"),  # the default chunk, longer than the sequence
  ],
)
def test_chunkwise_equals_the_step_loop(name, T, chunk, gates, x64):
  cell = CELLS[name]
  params, xs, carry = draw(name, 8, T=T)
  if gates == "large":
    params = params._replace(w_i=3 * params.w_i, b_i=params.b_i + 1.0, b_f=params.b_f + 3.0)
  lengths = jnp.array([T, T // 2, 0])

  def loss(run, params, xs, carry, valid, weights):
    final, ys = run(params, xs, carry, valid)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(leaf)) for leaf in final), (final, ys)

  def chunked(params, xs, carry, valid):
    return cell.chunkwise(params, xs, carry, valid, chunk)

  def looped(params, xs, carry, valid):
    return step_loop(cell, params, xs, carry, valid)

  grad = jax.jit(jax.value_and_grad(loss, (1, 2, 3), has_aux=True), static_argnums=0)
  for reverse in (False, True):
    valid = _valid(T, lengths, reverse)
    clean = jnp.where(valid[..., None], xs, 0.0)  # the runner zeroes the padding
    weights = np.random.default_rng(8).standard_normal((T, 3, H)) * np.asarray(valid)[..., None]
    (_, got), g_got = grad(chunked, params, clean, carry, valid, weights)
    (_, want), g_want = grad(looped, params, clean, carry, valid, weights)
    mask = np.asarray(valid)[..., None]
    assert max_rel(got[0], want[0]) < 1e-12  # the final carry, m included: the same frame
    assert max_rel(np.asarray(got[1]) * mask, np.asarray(want[1])) < 1e-12
    assert max_rel(g_got, g_want) < 1e-11
    # NaN in the padding reaches nothing either
    dirty = jnp.where(valid[..., None], xs, jnp.nan)
    (_, nan_run), g_nan = grad(chunked, params, dirty, carry, valid, weights)
    assert max_rel(nan_run[0], want[0]) < 1e-12
    assert max_rel(g_nan[0], g_want[0]) < 1e-11 and max_rel(g_nan[2], g_want[2]) < 1e-11


def test_scan_impl_chunkwise_equals_the_step_loop(x64):
  """Through the runner (gj.scan, impl="chunkwise"): lengths, reverse, values and gradients."""
  params, xs, carry = draw("mlstm", 17)
  lengths = jnp.array([9, 4, 0])
  chunked = gj.ScanOptions(impl="chunkwise", chunk_size=4)
  for reverse in (False, True):
    got = gj.scan(MLSTM, params, xs, carry=carry, lengths=lengths, reverse=reverse, options=chunked)
    assert max_rel(got, run(MLSTM, params, xs, carry, lengths, reverse)) < 1e-12

  def loss(params, options):
    final, ys = gj.scan(
      MLSTM, params, xs, carry=carry, lengths=lengths, reverse=True, options=options
    )
    return jnp.sum(ys * xs[..., :1]) + sum(jnp.sum(jnp.sin(leaf)) for leaf in final)

  g_got = jax.grad(loss)(params, chunked)
  g_want = jax.grad(loss)(params, gj.ScanOptions(impl="autodiff"))
  assert max_rel(g_got, g_want) < 1e-11


def test_chunkwise_without_valid_and_in_float32():
  params, xs, carry = draw("mlstm", 9, T=10, dtype=np.float32, scale=0.5)
  got = jax.jit(lambda p, x, c: MLSTM.chunkwise(p, x, c, None, 3))(params, xs, carry)
  want = gj.scan(MLSTM, params, xs, carry=carry)
  assert got[1].dtype == jnp.float32
  assert max_rel(got, want) < 1e-5
  empty = MLSTM.chunkwise(params, xs[:0], carry, None, 3)
  assert empty[1].shape == (0, 3, H) and max_err(empty[0], carry) == 0
  with pytest.raises(ValueError, match="chunk_size"):
    MLSTM.chunkwise(params, xs, carry, None, 0)


def test_chunkwise_memory_is_linear_in_time():
  """No (T, T) array anywhere in the chunkwise gradient, and its largest array grows as T
  (it is T · chunk: the within-chunk decay matrices), not T²."""
  params = MLSTM.init(jax.random.key(0), I)
  largest = {}
  for T in (128, 256):
    carry = MLSTM.initial_carry((2,))

    def loss(params, xs, carry=carry):
      return jnp.sum(MLSTM.chunkwise(params, xs, carry, None, 8)[1])

    jaxpr = jax.make_jaxpr(jax.grad(loss))(params, jnp.ones((T, 2, I))).jaxpr
    shapes = [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars]
    assert not any(sum(d >= T for d in shape) >= 2 for shape in shapes)
    largest[T] = max(int(np.prod(shape)) for shape in shapes)
  assert largest[256] == 2 * largest[128]
  assert largest[256] <= 256 * 8 * 2 * 2 * 4  # T · chunk · batch · heads, times a few


# ---------------------------------------------------------------------------
# Parallel-in-time, analysis, dynamics, training, stacks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "reverse"), [("deer", False), ("quasi", True)])
def test_slstm_parallel_scan_converges_to_scan(method, reverse, x64):
  """Newton over the sequence, the stabiliser's branch linearised where the iterate lies."""
  params, xs, carry = draw("slstm", 10, scale=0.5)
  lengths = jnp.array([9, 6, 0])
  final, ys, info = gj.parallel_scan(
    SLSTM, params, xs, method=method, carry=carry, lengths=lengths, reverse=reverse
  )
  want = run(SLSTM, params, xs, carry, lengths, reverse)
  assert bool(jnp.all(info.converged))
  assert max_err((final, ys), want) < 1e-8
  if method == "deer":  # quadratic: fewer sweeps than steps on a nonlinear (r != 0) cell
    assert int(jnp.max(info.iterations)) < 9


@pytest.mark.parametrize("name", ["slstm", "mlstm"])
def test_contributions_sum_to_the_gradient(name, x64):
  params, xs, carry = draw(name, 11)
  lengths = jnp.array([9, 4, 0])

  def loss_fn(ys, final):
    return jnp.sum(ys**2) + jnp.sum(jnp.tanh(final.c))

  contrib = gj.analysis.step_contributions(
    CELLS[name], params, xs, loss_fn, carry=carry, lengths=lengths
  )
  grad = jax.grad(lambda p: loss_fn(*run(CELLS[name], p, xs, carry, lengths)[::-1]))(params)
  assert max_rel(jax.tree.map(lambda a: a.sum(0), contrib), grad) < 1e-12


@pytest.mark.parametrize("name", ["slstm", "mlstm"])
def test_jacobian_norms_equal_jacrev(name, x64):
  T = 5
  params, xs, carry = draw(name, 12, T=T, B=1)
  cell = CELLS[name]
  norms = gj.analysis.jacobian_norms(cell, params, xs, carry=carry, ord=2)
  flat, unravel = jax.flatten_util.ravel_pytree(carry)

  @jax.jit
  def step_jacobian(flat, x):
    return jax.jacrev(
      lambda c: jax.flatten_util.ravel_pytree(cell.step(params, unravel(c), x)[0])[0]
    )(flat)

  steps = []
  for x in xs:
    steps.append(np.asarray(step_jacobian(flat, x)))
    flat = jax.flatten_util.ravel_pytree(cell.step(params, unravel(flat), x)[0])[0]
  J = np.eye(flat.size)
  for k in reversed(range(T)):  # J = ∂c_T/∂c_k
    J = J @ steps[k]
    want = np.linalg.norm(J, 2)
    assert abs(float(norms[k, 0]) - want) < 1e-10 * max(1.0, want)


def test_mlstm_lyapunov_exponents_closed_form(x64):
  """C and n decay by f' = exp(logσ(f̃) + m_{t−1} − m_t) per head, m by 1 or 0 (the gauge):
  the exponents are mean_t log f'_t = mean_t logσ(f̃_t) + (m_0 − m_T)/T, K·V + K times per
  head, and −inf (the stabiliser's i branch wins at least once) for m."""
  T = 12
  params, xs, _ = draw("mlstm", 13, T=T, B=2)
  lam = np.asarray(gj.dynamics.lyapunov_exponents(MLSTM, params, xs))
  final, _ = gj.scan(MLSTM, params, xs)
  a_f = np.asarray(xs @ params.w_f) + np.asarray(params.b_f)
  closed = np.mean(official_steps.log_sigmoid(a_f), axis=0) - np.asarray(final.m) / T  # (B, NH)
  per_head = 3 * 2 + 3
  for b in range(2):
    want = np.sort(np.repeat(closed[b], per_head))[::-1]
    np.testing.assert_allclose(lam[b, : 2 * per_head], want, rtol=0, atol=1e-12)
    assert np.all(np.isneginf(lam[b, 2 * per_head :]))


def test_slstm_lyapunov_exponents_at_the_official_init(x64):
  """With r = 0 (the official init) the gates read only x: c and n decay by f'_t per unit."""
  T = 12
  params = SLSTM.init(jax.random.key(0), I, dtype=jnp.float64)
  xs = jnp.asarray(np.random.default_rng(14).standard_normal((T, 2, I)))
  # all of them: a frame of the identity's first k columns would start in y and c alone
  lam = np.asarray(gj.dynamics.lyapunov_exponents(SLSTM, params, xs))[:, : 2 * H]
  carry, logs = SLSTM.initial_carry((2,), jnp.float64), []
  for x in xs:
    carry, _, gates = SLSTM.recur(params, carry, SLSTM.project(params, x))
    logs.append(np.log(np.asarray(gates.f)))
  closed = np.mean(logs, axis=0)  # (B, H)
  for b in range(2):
    want = np.sort(np.repeat(closed[b], 2))[::-1]
    np.testing.assert_allclose(lam[b], want, rtol=0, atol=1e-12)


def test_a_tiny_training_run():
  """mLSTM (its output read from the carry by read); the sLSTM's training path is the LSTM's
  (a NamedTuple carry with a split), which the generic suite trains."""
  cell = MLSTM
  task = gj.tasks.adding(6, variable_length=True, min_length=3)
  key = jax.random.key(0)
  result = gj.train.fit(cell, task, key=key, steps=2, batch_size=4, eval_every=0, progress=False)
  assert not result.history.diverged and all(np.isfinite(result.history.loss))
  start = gj.train.init_model(cell, task, jax.random.split(jax.random.split(key)[0])[0])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), result.params, start)
  assert all(jax.tree.leaves(changed))


def test_bidirectional_stack_of_both(x64):
  net = gj.stack([SLSTM, MLSTM], bidirectional=True)
  params = net.init(jax.random.key(0), I, dtype=jnp.float64)
  xs = jnp.asarray(np.random.default_rng(15).standard_normal((7, 2, I)))
  lengths = jnp.array([7, 3])
  carries, ys = gj.scan_stack(net, params, xs, lengths=lengths)
  inputs = xs
  for cell, p, c in zip(net.layers, params, carries, strict=True):
    fwd = gj.scan(cell, p.forward, inputs, lengths=lengths)
    bwd = gj.scan(cell, p.backward, inputs, lengths=lengths, reverse=True)
    assert max_err((c.forward, c.backward), (fwd[0], bwd[0])) < 1e-13
    inputs = jnp.concatenate([fwd[1], bwd[1]], axis=-1)
  assert ys.shape == (7, 2, 2 * H) and max_err(ys, inputs) < 1e-13


# ---------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
  ("factory", "kwargs", "error", "match"),
  [
    (gj.slstm, {"num_heads": 3}, ValueError, "num_heads"),
    (gj.slstm, {"forget_bias": "chrono"}, ValueError, "forget_bias"),
    (gj.slstm, {"forget_bias": None}, TypeError, "forget_bias"),
    (gj.mlstm, {"num_heads": 0}, ValueError, "num_heads"),
    (gj.mlstm, {"key_size": 0}, ValueError, "key_size"),
    (gj.mlstm, {"key_size": 2.0}, TypeError, "key_size"),
    (gj.mlstm, {"eps": -1e-6}, ValueError, "eps"),
  ],
)
def test_bad_options_are_named(factory, kwargs, error, match):
  with pytest.raises(error, match=match):
    factory(8, **kwargs)
