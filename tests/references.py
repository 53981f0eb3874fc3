"""NumPy transcriptions of every cell's equations (SPEC §2, §3b), written here, not imported.

One function per family, ``family(cell, params, carry, x) -> (carry, y)``: one float64 step,
from the equations gate block by gate block (the modern cells: from the transcriptions of
their official code in tests/official_steps.py, through :func:`official`); a user's cell
(tests/user_cells.py) from the ``numpy_step`` it carries. The registry pairs each cell with
its reference.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj


def np_sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def np_relu(a):
  return np.maximum(a, 0.0)


def np_hard_sigmoid(a):
  return np.clip(a / 6.0 + 0.5, 0.0, 1.0)


def np_soft_sign(a):
  return a / (1.0 + np.abs(a))


def half_tanh(a):
  """A gate function of our own (the sigmoid of ``2a``), for cells with unusual gates."""
  return 0.5 * jnp.tanh(a) + 0.5


def np_half_tanh(a):
  return 0.5 * np.tanh(a) + 0.5


NUMPY_OF = {
  half_tanh: np_half_tanh,
  jnp.sin: np.sin,
  jnp.tanh: np.tanh,
  jax.nn.relu: np_relu,
  jax.nn.sigmoid: np_sigmoid,
  jax.nn.hard_sigmoid: np_hard_sigmoid,
  jax.nn.soft_sign: np_soft_sign,
}


def blocks(a, n):
  """Split the last axis of a fused matrix or bias into its ``n`` gate blocks."""
  size = a.shape[-1] // n
  return [a[..., k * size : (k + 1) * size] for k in range(n)]


def np_rnn(p, h, x, act=np.tanh):
  return act(x @ p["w_x"] + h @ p["w_h"] + p["b"])


def np_gru(p, h, x, reset, gate=np_sigmoid, act=np.tanh):
  W_xr, W_xz, W_xn = blocks(p["w_x"], 3)
  W_hr, W_hz, W_hn = blocks(p["w_h"], 3)
  b_xr, b_xz, b_xn = blocks(p["b_x"], 3)
  b_hr, b_hz, b_hn = blocks(p["b_h"], 3)
  r = gate(x @ W_xr + h @ W_hr + b_xr + b_hr)
  z = gate(x @ W_xz + h @ W_hz + b_xz + b_hz)
  if reset == "after":
    h_tilde = act(x @ W_xn + b_xn + r * (h @ W_hn + b_hn))
  else:
    h_tilde = act(x @ W_xn + (r * h) @ W_hn + b_xn + b_hn)
  return z * h + (1 - z) * h_tilde


def np_lstm(p, h, c, x, gate=np_sigmoid, act=np.tanh):
  W_xi, W_xf, W_xc, W_xo = blocks(p["w_x"], 4)
  W_hi, W_hf, W_hc, W_ho = blocks(p["w_h"], 4)
  b_i, b_f, b_c, b_o = blocks(p["b"], 4)
  i = gate(x @ W_xi + h @ W_hi + b_i)
  f = gate(x @ W_xf + h @ W_hf + b_f)
  o = gate(x @ W_xo + h @ W_ho + b_o)
  c_tilde = act(x @ W_xc + h @ W_hc + b_c)
  c = f * c + i * c_tilde
  return o * act(c), c


def np_mgu(p, h, x, reset_gate, gate=np_sigmoid, act=np.tanh):
  """Zhou et al. 2016 as Flax linen's MGUCell (SPEC §3b)."""
  W_xf, W_xn = blocks(p["w_x"], 2)
  W_hf, W_hn = blocks(p["w_h"], 2)
  b_xf, b_xn = blocks(p["b_x"], 2)
  f = gate(x @ W_xf + b_xf + h @ W_hf)
  if reset_gate:
    n = act(x @ W_xn + b_xn + f * (h @ W_hn + p["b_hn"]))
  else:
    n = act(x @ W_xn + b_xn + h @ W_hn + p["b_hn"])
  return (1 - f) * n + f * h


def np_minimal_rnn(p, h, x, gate=np_sigmoid, act=np.tanh):
  """Chen, Pennington & Schoenholz 2018 (SPEC §3b)."""
  z = act(x @ p["w_x"] + p["b_z"])
  u = gate(h @ p["w_uh"] + z @ p["w_uz"] + p["b_u"])
  return u * h + (1 - u) * z


def np_min_gru(p, h, x, gate=np_sigmoid, negative=False):
  """Feng et al. 2024 (SPEC §3b): z writes the candidate; ``negative``: keep ``1 − 2z``."""
  W_z, W_h = blocks(p["w_x"], 2)
  b_z, b_h = blocks(p["b"], 2)
  z = gate(x @ W_z + b_z)
  keep = 1 - 2 * z if negative else 1 - z
  return keep * h + z * (x @ W_h + b_h)


def np_min_lstm(p, h, x, gate=np_sigmoid, negative=False):
  """Feng et al. 2024 (SPEC §3b): normalised forget and input gates; ``negative``: keep
  ``(f − i)/(f + i)``."""
  W_f, W_i, W_h = blocks(p["w_x"], 3)
  b_f, b_i, b_h = blocks(p["b"], 3)
  f, i = gate(x @ W_f + b_f), gate(x @ W_i + b_i)
  keep = (f - i) / (f + i) if negative else f / (f + i)
  return keep * h + i / (f + i) * (x @ W_h + b_h)


def as_numpy(tree):
  return jax.tree.map(lambda a: np.asarray(a).astype(np.float64), tree)


def _dict(params):
  return params._asdict() if hasattr(params, "_asdict") else dict(params)


def _numpy_of(fn, override):
  return override or NUMPY_OF[fn]


# ---------------------------------------------------------------------------
# One reference per family: ``(cell, params, carry, x) -> (carry, y)`` in float64 NumPy,
# reading the cell's options (its gate and candidate functions) and nothing else of it.
# ``gate``/``act`` replace the NumPy twins of the cell's functions (a test of those options).
# ---------------------------------------------------------------------------


def rnn(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  h = np_rnn(p, h, x, _numpy_of(cell.options.activation, act))
  return h, h


def gru(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  o = cell.options
  h = np_gru(p, h, x, o.reset, _numpy_of(o.gate_fn, gate), _numpy_of(o.activation, act))
  return h, h


def lstm(cell, params, carry, x, gate=None, act=None):
  p, carry, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  o = cell.options
  h, c = np_lstm(p, carry.h, carry.c, x, _numpy_of(o.gate_fn, gate), _numpy_of(o.activation, act))
  return gj.LSTMState(h=h, c=c), h


def mgu(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  o = cell.options
  h = np_mgu(p, h, x, o.reset_gate, _numpy_of(o.gate_fn, gate), _numpy_of(o.activation, act))
  return h, h


def minimal_rnn(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  o = cell.options
  h = np_minimal_rnn(p, h, x, _numpy_of(o.gate_fn, gate), _numpy_of(o.activation, act))
  return h, h


def min_gru(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  h = np_min_gru(p, h, x, _numpy_of(cell.options.gate_fn, gate), cell.options.negative_eigenvalues)
  return h, h


def min_lstm(cell, params, carry, x, gate=None, act=None):
  p, h, x = _dict(as_numpy(params)), as_numpy(carry), as_numpy(x)
  h = np_min_lstm(p, h, x, _numpy_of(cell.options.gate_fn, gate), cell.options.negative_eigenvalues)
  return h, h


def user(cell, params, carry, x, gate=None, act=None):
  """A cell written outside the library carries its own transcription (tests/user_cells.py)."""
  return cell.numpy_step(_dict(as_numpy(params)), as_numpy(carry), as_numpy(x))


def _wide(a):
  """``a`` in float64, or complex128 where it is complex (a complex carry keeps its phase)."""
  a = np.asarray(a)
  return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def official(sequence_fn, **fixed):
  """A one-step reference from a whole-sequence transcription of official code
  (tests/official_steps.py): ``sequence_fn(params, xs, carry, **options)`` at ``T = 1``, with
  the cell's options that the function takes (``c``, ``eps``, ``negative_eigenvalues``, ...)
  and ``fixed`` keywords; the carry comes back as the cell's own type. The transcriptions take
  one batch axis, ``(T, B, I)``: any batch shape (``()`` included) is flattened into it and
  restored."""
  accepted = set(inspect.signature(sequence_fn).parameters)

  def reference(cell, params, carry, x, gate=None, act=None):
    options = {k: v for k, v in cell.options._asdict().items() if k in accepted}
    x = as_numpy(x)
    batch = x.shape[:-1]
    flat = jax.tree.map(lambda a: _wide(a).reshape((-1, *np.shape(a)[len(batch) :])), carry)
    new, ys = sequence_fn(
      as_numpy(params), x.reshape((1, -1, x.shape[-1])), flat, **options, **fixed
    )

    def restore(a):
      a = np.asarray(a)
      return a.reshape((*batch, *a.shape[1:]))

    if isinstance(carry, tuple) and hasattr(carry, "_fields"):
      new = type(carry)(*(restore(getattr(new, f)) for f in carry._fields))
    else:
      new = restore(new)
    return new, restore(ys[0])

  return reference
