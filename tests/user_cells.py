"""Cells written the way a user writes them: outside the library, four members, nothing else.

The registry runs them through every generic suite beside the built-in cells (SPEC §3b).
Each carries its own NumPy transcription (``numpy_step``), the independent reference.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def _affine(x, h, params):
  """``x W_x + h W_h + b``, with the bias broadcast explicitly (strict rank promotion)."""
  a = x @ params["w_x"] + h @ params["w_h"]
  return a + jnp.broadcast_to(params["b"], a.shape)


def _init(key, input_size, hidden, gates, dtype):
  k_x, k_h = jax.random.split(key)
  return {
    "w_x": jax.random.normal(k_x, (input_size, gates * hidden), dtype) / input_size**0.5,
    "w_h": jax.random.normal(k_h, (hidden, gates * hidden), dtype) / hidden**0.5,
    "b": jnp.zeros((gates * hidden,), dtype),
  }


@dataclasses.dataclass(frozen=True)
class TwoTimescales:
  """A dict carry with leaves of two shapes: ``h`` ``(*batch, H)`` and ``m`` ``(*batch, 2, H)``.

  Two memories share one forget gate ``f``: a fast one kept by ``f``, a slow one by
  ``sqrt(f)``; the output reads both.
  """

  hidden_size: int

  def init(self, key, input_size, *, dtype=jnp.float32):
    return _init(key, input_size, self.hidden_size, 3, dtype)

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    H = self.hidden_size
    return {"h": jnp.zeros((*batch_shape, H), dtype), "m": jnp.zeros((*batch_shape, 2, H), dtype)}

  def step(self, params, carry, x):
    a_f, a_o, a_c = jnp.split(_affine(x, carry["h"], params), 3, axis=-1)
    f, o, c = jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o), jnp.tanh(a_c)
    keep = jnp.stack([f, jnp.sqrt(f)], axis=-2)
    m = keep * carry["m"] + (1 - keep) * c[..., None, :]
    h = o * jnp.tanh(m[..., 0, :] + m[..., 1, :])
    return {"h": h, "m": m}, h

  @staticmethod
  def numpy_step(params, carry, x):
    a = x @ params["w_x"] + carry["h"] @ params["w_h"] + params["b"]
    a_f, a_o, a_c = np.split(a, 3, axis=-1)
    f, o, c = _sigmoid(a_f), _sigmoid(a_o), np.tanh(a_c)
    m_fast = f * carry["m"][..., 0, :] + (1 - f) * c
    m_slow = np.sqrt(f) * carry["m"][..., 1, :] + (1 - np.sqrt(f)) * c
    h = o * np.tanh(m_fast + m_slow)
    return {"h": h, "m": np.stack([m_fast, m_slow], axis=-2)}, h


@dataclasses.dataclass(frozen=True)
class Janet:
  """JANET (van der Westhuizen & Lasenby 2018): an LSTM with only a forget gate; array carry.

  ``s = x W_xf + h W_hf + b_f``, ``h' = σ(s) ⊙ h + (1 − σ(s − β)) ⊙ tanh(x W_xc + h W_hc + b_c)``.
  """

  hidden_size: int
  beta: float = 1.0

  def init(self, key, input_size, *, dtype=jnp.float32):
    return _init(key, input_size, self.hidden_size, 2, dtype)

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def step(self, params, h, x):
    s, a_c = jnp.split(_affine(x, h, params), 2, axis=-1)
    h = jax.nn.sigmoid(s) * h + (1 - jax.nn.sigmoid(s - self.beta)) * jnp.tanh(a_c)
    return h, h

  def numpy_step(self, params, h, x):
    a = x @ params["w_x"] + h @ params["w_h"] + params["b"]
    s, a_c = np.split(a, 2, axis=-1)
    h = _sigmoid(s) * h + (1 - _sigmoid(s - self.beta)) * np.tanh(a_c)
    return h, h


# Lorenz-96 (D = 5, F = 8) integrated by one Dormand–Prince 5(4) step of dt = 0.01 per time
# step: ELK's benchmark (Gonzalez et al. 2024, fig. 8, diffrax's Dopri5 with dt0 = t1 = dt, one
# step). The tableau is Dormand & Prince (1980); the solution is the fifth-order one.
DOPRI5_A = (
  (),
  (1 / 5,),
  (3 / 40, 9 / 40),
  (44 / 45, -56 / 15, 32 / 9),
  (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
  (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
DOPRI5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)


@dataclasses.dataclass(frozen=True)
class Lorenz96:
  """``dy_i/dt = (y_{i+1} − y_{i−2}) y_{i−1} − y_i + F`` (indices mod D), one Dopri5 step per
  time step; the input is added to the new state through ``params`` (a scalar gain, 0 for the
  autonomous benchmark)."""

  hidden_size: int = 5
  forcing: float = 8.0
  dt: float = 0.01

  def init(self, key, input_size, *, dtype=jnp.float32):
    del key, input_size
    return jnp.zeros((), dtype)

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.hidden_size), dtype)

  def field(self, y):
    xp = jnp if isinstance(y, jax.Array) else np
    return (xp.roll(y, -1, -1) - xp.roll(y, 2, -1)) * xp.roll(y, 1, -1) - y + self.forcing

  def dopri5(self, y):
    ks = []
    for row in DOPRI5_A:
      ks.append(
        self.field(y + self.dt * sum(a * k for a, k in zip(row, ks, strict=True)) if row else y)
      )
    return y + self.dt * sum(b * k for b, k in zip(DOPRI5_B, ks, strict=True))

  def step(self, params, y, x):
    new = self.dopri5(y) + params * jnp.sum(x, axis=-1, keepdims=True)
    return new, new

  def numpy_step(self, params, y, x):
    new = self.dopri5(np.asarray(y, np.float64)) + params * np.sum(x, axis=-1, keepdims=True)
    return new, new

  def attractor_state(self, steps=2000, dtype=np.float64):
    """A state on the attractor: from ``F + 0.01 e_0``, ``steps`` NumPy steps (ELK's start)."""
    y = np.full(self.hidden_size, self.forcing)
    y[0] += 0.01
    for _ in range(steps):
      y = self.dopri5(y)
    return y.astype(dtype)


@dataclasses.dataclass(frozen=True)
class Counting:
  """A tanh RNN whose carry also counts its steps in an int32 leaf: ``{"h", "count"}``."""

  hidden_size: int

  def init(self, key, input_size, *, dtype=jnp.float32):
    k_x, k_h = jax.random.split(key)
    H = self.hidden_size
    return {
      "w_x": jax.random.normal(k_x, (input_size, H), dtype) / input_size**0.5,
      "w_h": jax.random.normal(k_h, (H, H), dtype) / H**0.5,
    }

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    return {
      "h": jnp.zeros((*batch_shape, self.hidden_size), dtype),
      "count": jnp.zeros(batch_shape, jnp.int32),
    }

  def step(self, params, carry, x):
    h = jnp.tanh(x @ params["w_x"] + carry["h"] @ params["w_h"])
    return {"h": h, "count": carry["count"] + 1}, h


@dataclasses.dataclass(frozen=True)
class DictCell:
  """A gated cell with a dict carry: a memory ``m`` and an output ``h``, both kept by one gate.

  Not in the registry (no ``numpy_step``): tests/run/test_newton.py and tests/test_dynamics.py
  compare it with loops over its own ``step``."""

  hidden_size: int

  def init(self, key, input_size, *, dtype=jnp.float32):
    k1, k2, k3 = jax.random.split(key, 3)
    H = self.hidden_size
    return {
      "w_x": jax.random.normal(k1, (input_size, 2 * H), dtype),
      "w_h": jax.random.normal(k2, (H, 2 * H), dtype) / H**0.5,
      "w_m": jax.random.normal(k3, (H, H), dtype) / H**0.5,
    }

  def initial_carry(self, batch_shape=(), dtype=jnp.float32):
    zeros = jnp.zeros((*batch_shape, self.hidden_size), dtype)
    return {"h": zeros, "m": zeros}

  def step(self, params, carry, x):
    a = x @ params["w_x"] + carry["h"] @ params["w_h"]
    gate, cand = jnp.split(a, 2, axis=-1)
    g = jax.nn.sigmoid(gate)
    m = g * carry["m"] + (1 - g) * jnp.tanh(cand + carry["m"] @ params["w_m"])
    h = g * carry["h"] + (1 - g) * jnp.tanh(m)
    return {"h": h, "m": m}, h
