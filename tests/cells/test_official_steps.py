"""Tests of the official-code transcriptions in tests/official_steps.py.

(a) Each transcription against facts that need no upstream code: unstabilised recurrences
computed without a stabiliser, closed forms of the linear cells, invariants of the delta rule,
and the initialisation specs against the official recipes (and against wrong ones).
(b) Where the official JAX code is installed, against it: recurrentgemma 1.0.1 (the
``oracles`` extra) and mlstm-kernels 2.0.6's ``native_step.py`` (loaded by path; install with
``pip install --no-deps mlstm-kernels==2.0.6``). Skipped, with the reason, otherwise.
"""

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

import official_steps as ref


def assert_close(actual, expected, rtol=1e-12):
  """Equal to ``rtol`` relative to the largest entry (float64 transcriptions of one another)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = max(1.0, float(np.max(np.abs(expected))))
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def plain_sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


# --------------------------------------------------------------------------------------------
# sLSTM


def slstm_params(rng, input_size, num_heads, head_dim, r_scale):
  h = num_heads * head_dim
  return NS(
    w_x=0.7 * rng.normal(size=(input_size, 4 * h)),
    r=r_scale * rng.normal(size=(num_heads, head_dim, 4 * head_dim)),
    b=rng.normal(size=(4 * h,)),
  )


def unstabilised_slstm(p, xs, num_heads, head_dim, carry):
  """Beck et al.'s sLSTM without the stabiliser: ``c̄ = σ(f̃) c̄ + e^ĩ tanh z̃``, ``n̄`` alike.

  The recurrent term is read entry by entry as SPEC states the layout: ``r[h, k, g·D + j]``
  takes unit k of head h into gate g, unit j of head h (pre-activation column ``g·H + h·D + j``).
  """
  hidden = num_heads * head_dim
  y, cbar, nbar = carry.y, carry.c * np.exp(carry.m), carry.n * np.exp(carry.m)
  ys = []
  for x in xs:
    pre = x @ p.w_x + p.b
    for h in range(num_heads):
      for g in range(4):
        for j in range(head_dim):
          for k in range(head_dim):
            pre[:, g * hidden + h * head_dim + j] += (
              y[:, h * head_dim + k] * p.r[h, k, g * head_dim + j]
            )
    i, f, z, o = (pre[:, g * hidden : (g + 1) * hidden] for g in range(4))
    cbar = plain_sigmoid(f) * cbar + np.exp(i) * np.tanh(z)
    nbar = plain_sigmoid(f) * nbar + np.exp(i)
    y = plain_sigmoid(o) * cbar / nbar
    ys.append(y)
  return cbar, nbar, np.stack(ys)


@pytest.mark.parametrize("r_scale", [0.0, 0.4])
@pytest.mark.parametrize("start", ["zero", "random"])
def test_slstm_equals_unstabilised_recurrence(r_scale, start):
  rng = np.random.default_rng(1)
  num_heads, head_dim, batch = 2, 3, 2
  hidden = num_heads * head_dim
  p = slstm_params(rng, 4, num_heads, head_dim, r_scale)
  xs = rng.normal(size=(6, batch, 4))
  if start == "zero":
    carry = ref.SLSTMCarry(*(np.zeros((batch, hidden)) for _ in range(4)))
  else:
    carry = ref.SLSTMCarry(
      rng.normal(size=(batch, hidden)),
      rng.normal(size=(batch, hidden)),
      rng.uniform(0.5, 2.0, size=(batch, hidden)),
      rng.normal(size=(batch, hidden)),
    )
  final, ys = ref.slstm_official(p, xs, None if start == "zero" else carry)
  cbar, nbar, ys_expected = unstabilised_slstm(p, xs, num_heads, head_dim, carry)
  assert_close(ys, ys_expected)
  assert_close(final.y, ys_expected[-1])
  # the stabilised carry is the unstabilised one in the frame m: c = c̄ e^{-m}, n = n̄ e^{-m}
  assert_close(final.c * np.exp(final.m), cbar)
  assert_close(final.n * np.exp(final.m), nbar)


def test_slstm_n_zero_branch_moves_only_the_frame():
  """Vanilla's all-of-n test against SPEC's elementwise one, on a carry with one n = 0 row."""
  rng = np.random.default_rng(2)
  p = slstm_params(rng, 3, 2, 2, 0.5)
  xs = rng.normal(size=(3, 2, 3))
  n = np.ones((2, 4))
  n[0] = 0.0
  carry = ref.SLSTMCarry(np.zeros((2, 4)), np.zeros((2, 4)), n, np.full((2, 4), 4.0))
  whole, ys_whole = ref.slstm_official(p, xs, carry)
  each, ys_each = ref.slstm_official(p, xs, carry, elementwise_n_zero=True)
  assert np.max(np.abs(whole.m[0] - each.m[0])) > 0.1  # row 0: another frame ...
  assert_close(whole.m[1], each.m[1])
  assert_close(ys_whole, ys_each)  # ... and the same outputs and c/n
  assert_close(whole.c / whole.n, each.c / each.n)


def test_slstm_clamp_acts_on_a_carry_with_n_zero_and_c_nonzero():
  """The official ``min(f', 1)`` is a no-op except here: ``n = 0`` everywhere, ``c ≠ 0``."""
  rng = np.random.default_rng(3)
  p = slstm_params(rng, 3, 1, 2, 0.0)
  xs = rng.normal(size=(1, 1, 3))
  c0 = np.array([[0.5, -2.0]])
  carry = ref.SLSTMCarry(np.zeros((1, 2)), c0, np.zeros((1, 2)), np.full((1, 2), 50.0))
  final, _ = ref.slstm_official(p, xs, carry)
  i, _, z, _ = np.split(xs[0] @ p.w_x + p.b, 4, axis=-1)
  # m_t = ĩ (the n == 0 branch), so i' = 1 and f' = min(exp(50 + logσ(f̃) − ĩ), 1) = 1
  assert_close(final.m, i)
  assert_close(final.c, c0 + np.tanh(z))
  assert_close(final.n, np.ones((1, 2)))


def test_slstm_layouts_round_trip():
  rng = np.random.default_rng(4)
  p = slstm_params(rng, 3, 2, 3, 1.0)
  w_x, r_int, b_int = ref.slstm_layouts(p)
  r_ext, b_ext = ref.slstm_external_layouts(p)
  # sLSTMCell_vanilla._recurrent_kernel_ext2int / _bias_ext2int, in NumPy
  assert np.array_equal(r_ext.transpose(0, 2, 3, 1).reshape(2, 12, 3), r_int)
  assert np.array_equal(b_ext.transpose(1, 0, 2).reshape(-1), b_int)
  assert np.array_equal(w_x, p.w_x)
  assert r_int[1, 2 * 3 + 1, 0] == p.r[1, 0, 2 * 3 + 1]  # head 1, gate z, unit 1 <- unit 0


def test_slstm_powerlaw_forget_bias():
  assert_close(ref.slstm_powerlaw_forget_bias(1), [5.0])  # SPEC; upstream gives 0/0 = NaN
  d = 4
  expected = [5.0 - 12.0 * (k / (d - 1)) ** 0.3 for k in range(d)]
  assert_close(ref.slstm_powerlaw_forget_bias(d), expected)
  assert ref.slstm_powerlaw_forget_bias(d)[-1] == -7.0


# --------------------------------------------------------------------------------------------
# mLSTM


def mlstm_params(rng, input_size, num_heads, key_size, value_size):
  return NS(
    w_q=rng.normal(size=(input_size, num_heads * key_size)),
    w_k=rng.normal(size=(input_size, num_heads * key_size)),
    w_v=rng.normal(size=(input_size, num_heads * value_size)),
    w_i=rng.normal(size=(input_size, num_heads)),
    w_f=rng.normal(size=(input_size, num_heads)),
    b_i=rng.normal(size=(num_heads,)),
    b_f=rng.normal(size=(num_heads,)) + 2.0,
  )


def unstabilised_mlstm(p, xs, num_heads, key_size, value_size, carry):
  """``C̄ = σ(f̃) C̄ + e^ĩ k vᵀ``, ``h = q̃ᵀC̄ / max(|q̃ᵀn̄|, 1)``, ``q̃ = q/√K``, head by head."""
  cbar = carry.c * np.exp(carry.m)[..., None, None]
  nbar = carry.n * np.exp(carry.m)[..., None]
  ys = []
  for x in xs:
    out = []
    for h in range(num_heads):
      q = x @ p.w_q[:, h * key_size : (h + 1) * key_size] / math.sqrt(key_size)
      k = x @ p.w_k[:, h * key_size : (h + 1) * key_size]
      v = x @ p.w_v[:, h * value_size : (h + 1) * value_size]
      f = plain_sigmoid(x @ p.w_f[:, h] + p.b_f[h])[:, None]
      i = np.exp(x @ p.w_i[:, h] + p.b_i[h])[:, None]
      cbar[:, h] = f[..., None] * cbar[:, h] + i[..., None] * k[:, :, None] * v[:, None, :]
      nbar[:, h] = f * nbar[:, h] + i * k
      num = np.einsum("bk,bkv->bv", q, cbar[:, h])
      den = np.maximum(np.abs(np.einsum("bk,bk->b", q, nbar[:, h])), 1.0)[:, None]
      out.append(num / den)
    ys.append(np.concatenate(out, axis=-1))
  return cbar, nbar, np.stack(ys)


@pytest.mark.parametrize("start", ["zero", "random"])
def test_mlstm_eps0_equals_unstabilised(start):
  rng = np.random.default_rng(5)
  num_heads, key_size, value_size, batch = 2, 3, 2, 2
  p = mlstm_params(rng, 4, num_heads, key_size, value_size)
  xs = rng.normal(size=(7, batch, 4))
  if start == "zero":
    carry = ref.MLSTMCarry(
      np.zeros((batch, num_heads, key_size, value_size)),
      np.zeros((batch, num_heads, key_size)),
      np.zeros((batch, num_heads)),
    )
  else:
    carry = ref.MLSTMCarry(
      rng.normal(size=(batch, num_heads, key_size, value_size)),
      rng.normal(size=(batch, num_heads, key_size)),
      rng.normal(size=(batch, num_heads)),
    )
  final, ys = ref.mlstm_official(p, xs, None if start == "zero" else carry, eps=0.0)
  cbar, nbar, ys_expected = unstabilised_mlstm(p, xs, num_heads, key_size, value_size, carry)
  assert_close(ys, ys_expected)
  assert_close(final.c * np.exp(final.m)[..., None, None], cbar)
  assert_close(final.n * np.exp(final.m)[..., None], nbar)


def test_mlstm_eps_makes_the_output_depend_on_the_frame():
  """Shifting the carry's frame ``(c e^{-δ}, n e^{-δ}, m + δ)``: no change at eps = 0 only."""
  rng = np.random.default_rng(6)
  p = mlstm_params(rng, 3, 1, 2, 2)
  p.b_f = np.array([8.0])  # the forget branch wins the max, so the shift persists
  xs = rng.normal(size=(4, 1, 3))
  carry = ref.MLSTMCarry(
    rng.normal(size=(1, 1, 2, 2)), rng.normal(size=(1, 1, 2)), np.zeros((1, 1))
  )
  delta = 12.0
  shifted = ref.MLSTMCarry(carry.c * np.exp(-delta), carry.n * np.exp(-delta), carry.m + delta)
  for eps, differs in ((0.0, False), (1e-6, True)):
    _, ys = ref.mlstm_official(p, xs, carry, eps=eps)
    _, ys_shifted = ref.mlstm_official(p, xs, shifted, eps=eps)
    gap = np.max(np.abs(ys - ys_shifted)) / np.max(np.abs(ys))
    assert (gap > 1e-3) if differs else (gap < 1e-12), (eps, gap)


# --------------------------------------------------------------------------------------------
# RG-LRU


def rg_lru_params(rng, input_size, hidden, num_heads):
  d = hidden // num_heads
  return NS(
    w_x=rng.normal(size=(input_size, hidden)),
    b_x=rng.normal(size=(hidden,)),
    a_param=rng.normal(size=(hidden,)),
    input_gate_w=rng.normal(size=(num_heads, d, d)),
    a_gate_w=rng.normal(size=(num_heads, d, d)),
    input_gate_b=rng.normal(size=(num_heads, d)),
    a_gate_b=rng.normal(size=(num_heads, d)),
  )


def test_rg_lru_constant_input_closed_form():
  """u constant (x = 0, u = b_x): a constant, h_T = a^T h_0 + √(1−a²) g u (1 − a^T)/(1 − a)."""
  rng = np.random.default_rng(7)
  hidden, num_heads, t, c = 6, 2, 9, 8.0
  p = rg_lru_params(rng, 3, hidden, num_heads)
  u = p.b_x
  h0 = rng.normal(size=(2, hidden))
  final, ys = ref.rg_lru_official(p, np.zeros((t, 2, 3)), h0, c=c)
  gates = []
  for w, b in ((p.input_gate_w, p.input_gate_b), (p.a_gate_w, p.a_gate_b)):
    d = hidden // num_heads
    gates.append(np.concatenate([u[h * d : (h + 1) * d] @ w[h] + b[h] for h in range(num_heads)]))
  gate_x, r = plain_sigmoid(gates[0]), plain_sigmoid(gates[1])
  a = plain_sigmoid(-p.a_param) ** (c * r)  # the paper's a^{c r} with a = σ(−Λ) (sign flipped)
  for step in range(t):
    n = step + 1
    expected = a**n * h0 + np.sqrt(1 - a**2) * gate_x * u * (1 - a**n) / (1 - a)
    assert_close(ys[step], expected)
  assert_close(final, ys[-1])


def test_rg_lru_segment_start_skips_the_normalisation():
  rng = np.random.default_rng(8)
  p = rg_lru_params(rng, 3, 4, 1)
  xs = rng.normal(size=(5, 2, 3))
  h0 = rng.normal(size=(2, 4))
  pos = np.array([[0, 0], [1, 1], [0, 2], [1, 3], [2, 4]])  # (T, B): batch 0 restarts at t = 2
  _, ys = ref.rg_lru_official(p, xs, h0, segment_pos=pos)
  u = xs @ p.w_x + p.b_x
  gate_x = plain_sigmoid(u @ p.input_gate_w[0] + p.input_gate_b[0])
  assert_close(ys[0], gate_x[0] * u[0])  # h0 dropped, no √(1 − a²)
  assert_close(ys[2, 0], gate_x[2, 0] * u[2, 0])
  _, ys_spec = ref.rg_lru_official(p, xs, h0)
  assert np.max(np.abs(ys_spec[0] - ys[0])) > 0.01


# --------------------------------------------------------------------------------------------
# S6


def s6_params(rng, input_size, hidden, state, rank):
  return NS(
    w_x=rng.normal(size=(input_size, hidden)),
    x_proj=0.5 * rng.normal(size=(hidden, rank + 2 * state)),
    dt_proj_w=rng.normal(size=(rank, hidden)),
    dt_proj_b=rng.normal(size=(hidden,)),
    a_log=rng.normal(size=(hidden, state)),
    d=rng.normal(size=(hidden,)),
  )


@pytest.mark.parametrize("negative", [False, True])
def test_s6_one_state_is_a_scalar_recurrence(negative):
  rng = np.random.default_rng(9)
  hidden, rank, batch, t = 3, 2, 2, 6
  p = s6_params(rng, 2, hidden, 1, rank)
  xs = rng.normal(size=(t, batch, 2))
  h0 = rng.normal(size=(batch, hidden, 1))
  final, ys = ref.s6_official(p, xs, h0, negative_eigenvalues=negative)
  for b in range(batch):
    for d in range(hidden):
      h = float(h0[b, d, 0])
      for step in range(t):
        u = [float(xs[step, b] @ p.w_x[:, e]) for e in range(hidden)]
        proj = [sum(u[e] * p.x_proj[e, j] for e in range(hidden)) for j in range(rank + 2)]
        dt = math.log1p(
          math.exp(sum(proj[j] * p.dt_proj_w[j, d] for j in range(rank)) + p.dt_proj_b[d])
        )
        decay = math.exp(-dt * math.exp(p.a_log[d, 0]))
        if negative:
          decay = 2 * decay - 1
        h = decay * h + dt * u[d] * proj[rank]
        assert ys[step, b, d] == pytest.approx(h * proj[rank + 1] + p.d[d] * u[d], rel=1e-12)
      assert final[b, d, 0] == pytest.approx(h, rel=1e-12)


@pytest.mark.parametrize("negative", [False, True])
def test_s6_constant_input_closed_form(negative):
  """Constant x: Δ, B, C constant, h_T = ā^T h_0 + Δ u B (1 − ā^T)/(1 − ā)."""
  rng = np.random.default_rng(10)
  hidden, state, rank, t = 4, 3, 2, 8
  p = s6_params(rng, 2, hidden, state, rank)
  x = rng.normal(size=(1, 2))
  h0 = rng.normal(size=(1, hidden, state))
  final, ys = ref.s6_official(p, np.repeat(x[None], t, 0), h0, negative_eigenvalues=negative)
  u = (x @ p.w_x)[0]
  proj = u @ p.x_proj
  dt = np.logaddexp(0.0, proj[:rank] @ p.dt_proj_w + p.dt_proj_b)
  bb, cc = proj[rank : rank + state], proj[rank + state :]
  decay = np.exp(-dt[:, None] * np.exp(p.a_log))
  if negative:
    decay = 2 * decay - 1
  expected = decay**t * h0[0] + (dt * u)[:, None] * bb * (1 - decay**t) / (1 - decay)
  assert_close(final[0], expected)
  assert_close(ys[-1, 0], expected @ cc + p.d * u)


# --------------------------------------------------------------------------------------------
# LRU


def lru_params(rng, input_size, hidden, state):
  return NS(
    nu_log=rng.normal(size=(state,)) - 1.0,
    theta_log=rng.normal(size=(state,)),
    gamma_log=-rng.uniform(size=(state,)),
    b_re=rng.normal(size=(state, input_size)),
    b_im=rng.normal(size=(state, input_size)),
    c_re=rng.normal(size=(hidden, state)),
    c_im=rng.normal(size=(hidden, state)),
    d=rng.normal(size=(input_size, hidden)),
  )


def test_lru_zero_input_decays_by_abs_lambda():
  rng = np.random.default_rng(11)
  p = lru_params(rng, 3, 2, 4)
  h0 = rng.normal(size=(2, 4)) + 1j * rng.normal(size=(2, 4))
  final, ys = ref.lru_official(p, np.zeros((7, 2, 3)), h0)
  modulus = np.exp(-np.exp(p.nu_log))
  angle = np.exp(p.theta_log)
  assert_close(np.abs(final), modulus**7 * np.abs(h0))
  for step in range(7):
    h = h0 * (modulus * np.exp(1j * angle)) ** (step + 1)
    assert_close(ys[step], (h @ (p.c_re + 1j * p.c_im).T).real)


def test_lru_constant_input_closed_form():
  rng = np.random.default_rng(12)
  p = lru_params(rng, 3, 2, 4)
  x = rng.normal(size=(2, 3))
  final, ys = ref.lru_official(p, np.repeat(x[None], 6, 0))
  lam = np.exp(-np.exp(p.nu_log) + 1j * np.exp(p.theta_log))
  drive = (x @ (p.b_re + 1j * p.b_im).T) * np.exp(p.gamma_log)
  expected = drive * (1 - lam**6) / (1 - lam)
  assert_close(final, expected)
  assert_close(ys[-1], (expected @ (p.c_re + 1j * p.c_im).T).real + x @ p.d)


# --------------------------------------------------------------------------------------------
# DeltaNet


def delta_net_params(rng, input_size, num_heads, key_size, value_size, *, beta_bias=0.0):
  return NS(
    w_q=rng.normal(size=(input_size, num_heads * key_size)),
    w_k=rng.normal(size=(input_size, num_heads * key_size)),
    w_v=rng.normal(size=(input_size, num_heads * value_size)),
    w_beta=0.3 * rng.normal(size=(input_size, num_heads)),
    b_beta=np.full(num_heads, beta_bias),
    w_a=rng.normal(size=(input_size, num_heads)),
    a_log=rng.normal(size=(num_heads,)) - 1.0,
    dt_bias=rng.normal(size=(num_heads,)),
  )


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("negative", [False, True])
def test_delta_net_fixed_key_direction(gated, negative):
  """x_t = s_t x_0: one key direction k̂ per head. Across k̂ the state only decays (by Π α);
  along it ``k̂ᵀS_t = α(1 − β ρ²) k̂ᵀS_{t−1} + β ρ vᵀ`` with ``ρ = ‖k_t‖`` (fla's l2norm eps)."""
  rng = np.random.default_rng(13)
  num_heads, key_size, value_size, t = 2, 3, 2, 6
  p = delta_net_params(rng, 4, num_heads, key_size, value_size, beta_bias=3.0 if negative else 0.0)
  x0 = rng.normal(size=(1, 4))
  scales = rng.uniform(0.001, 2.0, size=t)
  xs = scales[:, None, None] * x0[None]
  s0 = rng.normal(size=(1, num_heads, key_size, value_size))
  run = ref.gated_delta_net_official if gated else ref.delta_net_official
  final, ys = run(p, xs, s0, negative_eigenvalues=negative)
  factors = []
  for h in range(num_heads):
    z = (x0 @ p.w_k[:, h * key_size : (h + 1) * key_size])[0]
    k_hat = z / np.linalg.norm(z)
    across = np.eye(key_size) - np.outer(k_hat, k_hat)
    along = k_hat @ s0[0, h]
    decay_all = 1.0
    for step in range(t):
      s = scales[step]
      rho = s * np.linalg.norm(z) / math.sqrt(s**2 * (z @ z) + 1e-6)
      beta = plain_sigmoid(s * x0[0] @ p.w_beta[:, h] + p.b_beta[h]) * (2.0 if negative else 1.0)
      alpha = 1.0
      if gated:
        alpha = math.exp(
          -math.exp(p.a_log[h]) * math.log1p(math.exp(s * x0[0] @ p.w_a[:, h] + p.dt_bias[h]))
        )
      v = s * x0[0] @ p.w_v[:, h * value_size : (h + 1) * value_size]
      factors.append(alpha * (1 - beta * rho**2))
      along = alpha * (1 - beta * rho**2) * along + beta * rho * v
      decay_all *= alpha
    assert_close(across @ final[0, h], decay_all * across @ s0[0, h])
    assert_close(k_hat @ final[0, h], along)
    # the output reads the final state: y_T = S_Tᵀ q_T / √K
    q = xs[-1, 0] @ p.w_q[:, h * key_size : (h + 1) * key_size]
    q = q / math.sqrt(q @ q + 1e-6)
    assert_close(
      ys[-1, 0, h * value_size : (h + 1) * value_size], final[0, h].T @ q / math.sqrt(key_size)
    )
  assert (min(factors) < 0) == negative  # only the negative-eigenvalue variant flips k̂ᵀS


def test_gated_delta_net_with_alpha_one_is_the_delta_rule():
  rng = np.random.default_rng(14)
  p = delta_net_params(rng, 3, 2, 2, 3)
  p.a_log = np.full(2, -np.inf)  # exp(a_log) = 0: g = 0, α = 1
  xs = rng.normal(size=(5, 2, 3))
  s0 = rng.normal(size=(2, 2, 2, 3))
  gated = ref.gated_delta_net_official(p, xs, s0)
  plain = ref.delta_net_official(p, xs, s0)
  assert_close(gated[0], plain[0])
  assert_close(gated[1], plain[1])


def test_l2norm_is_finite_at_zero():
  assert np.array_equal(ref.l2norm(np.zeros((2, 3))), np.zeros((2, 3)))
  x = np.array([3.0, 4.0])
  assert_close(ref.l2norm(x), x / math.sqrt(25 + 1e-6))


# --------------------------------------------------------------------------------------------
# Initialisation specs: the official recipes pass, other readings fail


def official_rg_lru_a_param(rng, n, min_rad=0.9, max_rad=0.999):
  """recurrentgemma ``rnn_real_param_init``."""
  unif = rng.uniform(size=n)
  a_real = 0.5 * np.log(unif * (max_rad**2 - min_rad**2) + min_rad**2 + 1e-8)
  return np.log(np.exp(-a_real) - 1.0)


def official_inv_dt(rng, n):
  """mamba ``Mamba.__init__`` / fla ``GatedDeltaNet.__init__`` dt bias."""
  dt = np.exp(rng.uniform(size=n) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
  dt = np.maximum(dt, 1e-4)
  return dt + np.log(-np.expm1(-dt))


def rejects(params, spec):
  with pytest.raises(AssertionError):
    ref.check_init(params, spec)


def test_init_rg_lru():
  rng = np.random.default_rng(15)
  h, nh = 512, 4
  d = h // nh
  p = NS(
    w_x=np.zeros((3, h)),
    b_x=np.zeros(h),
    a_param=official_rg_lru_a_param(rng, h),
    input_gate_w=rng.normal(size=(nh, d, d)) / math.sqrt(h),
    a_gate_w=rng.normal(size=(nh, d, d)) / math.sqrt(h),
    input_gate_b=np.zeros((nh, d)),
    a_gate_b=np.zeros((nh, d)),
  )
  spec = ref.rg_lru_official_init(3, h, num_heads=nh)
  ref.check_init(p, spec)
  # the paper's text: a^c (c = 8) uniform in [0.9, 0.999], i.e. a = U^{1/8}
  a = rng.uniform(0.9, 0.999, size=h) ** (1 / 8)
  rejects(NS(**{**vars(p), "a_param": np.log(1 / a - 1)}), spec)
  rejects(NS(**{**vars(p), "a_gate_w": p.a_gate_w * math.sqrt(nh)}), spec)  # variance 1/D


def test_init_lru():
  rng = np.random.default_rng(16)
  n, i, h, r_min, r_max = 512, 64, 32, 0.2, 0.99
  u1, u2 = rng.uniform(size=n), rng.uniform(size=n)
  nu_log = np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2))
  theta_log = np.log(2 * math.pi * u2)
  lam = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
  p = NS(
    nu_log=nu_log,
    theta_log=theta_log,
    gamma_log=np.log(np.sqrt(1 - np.abs(lam) ** 2)),
    b_re=rng.normal(size=(n, i)) / math.sqrt(2 * i),
    b_im=rng.normal(size=(n, i)) / math.sqrt(2 * i),
    c_re=rng.normal(size=(h, n)) / math.sqrt(n),
    c_im=rng.normal(size=(h, n)) / math.sqrt(n),
    d=np.zeros((i, h)),
  )
  spec = ref.lru_official_init(i, h, state_size=n, r_min=r_min, r_max=r_max)
  ref.check_init(p, spec)
  radius = rng.uniform(r_min, r_max, size=n)  # |λ| uniform, not |λ|²
  rejects(NS(**{**vars(p), "nu_log": np.log(-np.log(radius))}), spec)
  rejects(NS(**{**vars(p), "gamma_log": np.zeros(n)}), spec)


def test_init_s6_and_gated_delta_net():
  rng = np.random.default_rng(17)
  h, n = 512, 4
  r = math.ceil(h / 16)
  p = NS(
    w_x=np.zeros((3, h)),
    x_proj=np.zeros((h, r + 2 * n)),
    dt_proj_w=np.zeros((r, h)),
    dt_proj_b=official_inv_dt(rng, h),
    a_log=np.log(np.tile(np.arange(1.0, n + 1), (h, 1))),
    d=np.ones(h),
  )
  spec = ref.s6_official_init(3, h, state_size=n)
  ref.check_init(p, spec)
  rejects(
    NS(**{**vars(p), "dt_proj_b": ref.inverse_softplus(rng.uniform(1e-3, 0.1, size=h))}), spec
  )
  rejects(NS(**{**vars(p), "a_log": np.log(np.tile(np.arange(0.5, n), (h, 1)))}), spec)
  nh = 512
  q = NS(
    w_q=np.zeros((3, nh)),
    w_k=np.zeros((3, nh)),
    w_v=np.zeros((3, nh)),
    w_beta=np.zeros((3, nh)),
    b_beta=np.zeros(nh),
    w_a=np.zeros((3, nh)),
    a_log=np.log(rng.uniform(0, 16, size=nh)),
    dt_bias=official_inv_dt(rng, nh),
  )
  spec = ref.delta_net_official_init(3, nh, num_heads=nh)
  ref.check_init(q, spec)
  rejects(NS(**{**vars(q), "a_log": np.full(nh, math.log(8.0))}), spec)
  # Mamba-2's U(1, 16) is 1/16 away in KS distance: 4096 heads tell it apart
  nh = 4096
  q = NS(**{k: np.resize(v, (*np.shape(v)[:-1], nh)) for k, v in vars(q).items()})
  q.a_log, q.dt_bias = np.log(rng.uniform(0, 16, size=nh)), official_inv_dt(rng, nh)
  spec = ref.delta_net_official_init(3, nh, num_heads=nh)
  ref.check_init(q, spec)
  rejects(NS(**{**vars(q), "a_log": np.log(rng.uniform(1, 16, size=nh))}), spec)


def test_init_xlstm():
  rng = np.random.default_rng(18)
  nh, d = 4, 3
  b = np.zeros((4, nh, d))
  b[1] = [5.0 - 12.0 * (k / (d - 1)) ** 0.3 for k in range(d)]
  p = NS(w_x=rng.normal(size=(2, 4 * nh * d)), r=np.zeros((nh, d, 4 * d)), b=b.reshape(-1))
  spec = ref.slstm_official_init(2, nh * d, num_heads=nh)
  ref.check_init(p, spec)
  rejects(NS(**{**vars(p), "b": b.transpose(1, 0, 2).reshape(-1)}), spec)  # head-major bias
  nh = 512
  p = NS(
    w_q=np.zeros((2, nh)),
    w_k=np.zeros((2, nh)),
    w_v=np.zeros((2, nh)),
    w_i=np.zeros((2, nh)),
    w_f=np.zeros((2, nh)),
    b_i=0.1 * rng.normal(size=nh),
    b_f=np.linspace(3, 6, nh),
  )
  spec = ref.mlstm_official_init(2, nh, num_heads=nh, key_size=1)
  ref.check_init(p, spec)
  rejects(NS(**{**vars(p), "b_i": rng.normal(size=nh)}), spec)  # N(0, 1), not N(0, 0.1²)


# --------------------------------------------------------------------------------------------
# Against values the official code produced (tests/data/official, see its README.md)

FIXTURES = sorted((Path(__file__).parent.parent / "data" / "official").glob("*.npz"))
CARRIES = {"slstm_official": ref.SLSTMCarry, "mlstm_official": ref.MLSTMCarry}


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_against_official_outputs(path):
  data = np.load(path)
  meta = json.loads(str(data["meta"]))
  run = getattr(ref, meta["function"])
  params = NS(**{k[2:]: data[k] for k in data.files if k.startswith("p_")})
  kwargs = dict(meta["kwargs"])
  if "segment_pos" in data.files:
    kwargs["segment_pos"] = data["segment_pos"]
  carry_type = CARRIES.get(meta["function"])

  def carry(tag):
    if carry_type is None:
      return data[tag] if tag in data.files else None
    if f"{tag}_{carry_type._fields[0]}" not in data.files:
      return None
    return carry_type(*(data[f"{tag}_{name}"] for name in carry_type._fields))

  final, ys = run(params, data["xs"], carry("c0"), **kwargs)
  assert_close(ys, data["ys"], rtol=meta["rtol"])
  expected = carry("c1")
  if expected is None:
    return
  if carry_type is None:
    assert_close(final, expected, rtol=meta["rtol"])
  else:
    for name in carry_type._fields:
      assert_close(getattr(final, name), getattr(expected, name), rtol=meta["rtol"])


def test_fixtures_cover_every_transcription():
  functions = {json.loads(str(np.load(p)["meta"]))["function"] for p in FIXTURES}
  assert functions == {
    "slstm_official",
    "mlstm_official",
    "rg_lru_official",
    "s6_official",
    "lru_official",
    "delta_net_official",
    "gated_delta_net_official",
  }


# --------------------------------------------------------------------------------------------
# (b) Against the official JAX code, where installed


@contextlib.contextmanager
def upstream_numerics():
  """The official code relies on JAX's default promotion (the suite makes both strict)."""
  import jax

  with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
    yield


def installed(distribution: str, version: str):
  if importlib.util.find_spec(distribution.replace("-", "_")) is None:
    pytest.skip(f"{distribution}=={version} is not installed (see this module's docstring)")
  found = importlib.metadata.version(distribution)
  if found != version:
    pytest.skip(f"{distribution} {found} installed; these checks are for {version}")


@pytest.fixture(scope="module")
def recurrentgemma():
  installed("recurrentgemma", "1.0.1")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from recurrentgemma import common
    from recurrentgemma.jax import layers, scan
  return NS(common=common, layers=layers, scan=scan)


@pytest.fixture(scope="module")
def native_step():
  installed("mlstm-kernels", "2.0.6")
  # by path: mlstm_kernels.jax.recurrent's __init__ imports jax_triton
  root = importlib.util.find_spec("mlstm_kernels").submodule_search_locations[0]
  spec = importlib.util.spec_from_file_location(
    "mlstm_native_step", f"{root}/jax/recurrent/native_step.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_rglru(recurrentgemma, p, xs, h0, segment_pos, dtype):
  import jax.numpy as jnp

  layers, common = recurrentgemma.layers, recurrentgemma.common
  hidden, num_heads = p.a_param.shape[0], p.input_gate_w.shape[0]
  module = layers.RGLRU(
    width=hidden, num_heads=num_heads, scan_type=common.ScanType.LINEAR_NATIVE, param_dtype=dtype
  )
  variables = {
    "params": {
      "a_param": jnp.asarray(p.a_param, dtype),
      "input_gate": {
        "w": jnp.asarray(p.input_gate_w, dtype),
        "b": jnp.asarray(p.input_gate_b, dtype),
      },
      "a_gate": {"w": jnp.asarray(p.a_gate_w, dtype), "b": jnp.asarray(p.a_gate_b, dtype)},
    }
  }
  u = jnp.asarray((xs @ p.w_x + p.b_x).swapaxes(0, 1), dtype)  # SPEC's u, batch-major
  with upstream_numerics():
    y, last = module.apply(variables, u, jnp.asarray(segment_pos.T), jnp.asarray(h0, dtype))
  return np.asarray(last, np.float64), np.asarray(y, np.float64).swapaxes(0, 1)


@pytest.mark.parametrize("segments", ["none", "restarts"])
def test_rg_lru_against_recurrentgemma_float64(x64, recurrentgemma, monkeypatch, segments):
  import jax.numpy as jnp

  # RGLRU.__call__ accumulates in float32 (linear_scan's acc_float_dtype): raise it to float64
  scan = recurrentgemma.scan
  monkeypatch.setattr(
    scan, "linear_scan", functools.partial(scan.linear_scan, acc_float_dtype=jnp.float64)
  )
  rng = np.random.default_rng(19)
  t, batch, hidden, num_heads = 6, 2, 6, 2
  p = rg_lru_params(rng, 3, hidden, num_heads)
  xs = rng.normal(size=(t, batch, 3))
  h0 = rng.normal(size=(batch, hidden))
  if segments == "none":
    pos = np.tile(np.arange(1, t + 1)[:, None], (1, batch))  # no step starts a segment (SPEC)
  else:
    pos = np.array([[0, 3], [1, 4], [2, 0], [0, 1], [1, 2], [2, 3]])
  last, ys = run_rglru(recurrentgemma, p, xs, h0, pos, jnp.float64)
  final, ys_ref = ref.rg_lru_official(p, xs, h0, segment_pos=None if segments == "none" else pos)
  assert_close(ys_ref, ys)
  assert_close(final, last)


def test_rg_lru_against_recurrentgemma_float32(recurrentgemma):
  import jax.numpy as jnp

  rng = np.random.default_rng(20)
  t, batch, hidden = 8, 2, 4
  p = rg_lru_params(rng, 3, hidden, 1)
  p = NS(**{k: v.astype(np.float32).astype(np.float64) for k, v in vars(p).items()})
  xs = rng.normal(size=(t, batch, 3)).astype(np.float32).astype(np.float64)
  h0 = np.zeros((batch, hidden), np.float32)
  pos = np.tile(np.arange(1, t + 1)[:, None], (1, batch))
  last, ys = run_rglru(recurrentgemma, p, xs, h0, pos, jnp.float32)
  final, ys_ref = ref.rg_lru_official(p, xs)
  assert_close(ys, ys_ref, rtol=1e-5)
  assert_close(last, final, rtol=1e-5)


def test_rg_lru_init_against_recurrentgemma(recurrentgemma):
  import jax

  # the module's own initialisers (RGLRU.a_real_param_init, BlockDiagonalLinear.kernel_init),
  # drawn without RGLRU.init, which would also run (and compile) the layer
  layers = recurrentgemma.layers
  hidden, num_heads = 256, 4
  d = hidden // num_heads
  keys = jax.random.split(jax.random.key(0), 3)
  a_init = layers.RGLRU(width=hidden, num_heads=num_heads).a_real_param_init
  w_init = layers.BlockDiagonalLinear(width_input=hidden, num_blocks=num_heads).kernel_init
  with upstream_numerics():
    p = NS(
      w_x=np.zeros((3, hidden), np.float32),
      b_x=np.zeros(hidden, np.float32),
      a_param=np.asarray(a_init(keys[0], (hidden,))),
      input_gate_w=np.asarray(w_init(keys[1], (num_heads, d, d))),
      a_gate_w=np.asarray(w_init(keys[2], (num_heads, d, d))),
      input_gate_b=np.zeros((num_heads, d), np.float32),
      a_gate_b=np.zeros((num_heads, d), np.float32),
    )
  ref.check_init(p, ref.rg_lru_official_init(3, hidden, num_heads=num_heads))


@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_mlstm_against_mlstm_kernels(x64, native_step, eps):
  import jax.numpy as jnp

  rng = np.random.default_rng(21)
  num_heads, key_size, value_size, batch, t = 2, 3, 2, 2, 6
  p = mlstm_params(rng, 4, num_heads, key_size, value_size)
  xs = 2.0 * rng.normal(size=(t, batch, 4))
  carry = ref.MLSTMCarry(
    rng.normal(size=(batch, num_heads, key_size, value_size)),
    rng.normal(size=(batch, num_heads, key_size)),
    rng.normal(size=(batch, num_heads)),
  )
  c, n, m = (jnp.asarray(carry.c), jnp.asarray(carry.n), jnp.asarray(carry.m[..., None]))
  ys = []
  with upstream_numerics():
    for x in xs:
      q, k, v, i, f = (jnp.asarray(a) for a in ref.mlstm_inputs(p, x))
      h, (c, n, m) = native_step.mlstm_recurrent_step__native_fw(c, n, m, q, k, v, i, f, eps=eps)
      ys.append(np.asarray(h).reshape(batch, -1))
  final, ys_ref = ref.mlstm_official(p, xs, carry, eps=eps)
  assert_close(ys_ref, np.stack(ys))
  assert_close(final.c, c)
  assert_close(final.n, n)
  assert_close(final.m, m[..., 0])
