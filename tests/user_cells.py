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
