r"""Recurrent cells as pure functions: Elman RNN, GRU (both conventions), LSTM.

A :class:`Cell` is an immutable value, a ``NamedTuple`` of pure functions returned
by a factory (:func:`rnn`, :func:`gru`, :func:`lstm`), in the way optax returns a
``GradientTransformation``. Parameters are ``NamedTuple`` pytrees with fused gate
matrices in PyTorch's gate order:

======  ==============  ==========================================
cell    gate order      carry
======  ==============  ==========================================
RNN     (none)          ``h``
GRU     ``r, z, n``     ``h``
LSTM    ``i, f, g, o``  :class:`LSTMState` ``(h, c)``
======  ==============  ==========================================

Each step is split in two halves that share one source of truth:

* ``cell.project(params, x)``: the input half of every pre-activation,
  ``x W_x + b_x``. It has no time dependence, so a runner may apply it to a
  whole sequence at once (one large matmul) before the recurrence.
* ``cell.recur(params, carry, px)``: the recurrent half, given the projected
  input ``px``. It returns ``(carry, y, gates)``, where ``gates`` holds the gate
  activations (:class:`GRUGates`, :class:`LSTMGates`, ``()`` for the RNN) so the
  analysis module can record them without a second copy of the step.

``cell.step(params, carry, x)`` is exactly ``recur(params, carry, project(params, x))``
without the gates: the shape of a ``jax.lax.scan`` body once ``params`` is bound.

Initialisation follows Flax linen's recurrent cells: the input matrix is LeCun
normal (variance ``1 / input_size``, so the pre-activations are O(1) for O(1)
inputs whatever the number of gates fused beside it), each recurrent gate block is
an orthogonal ``(hidden, hidden)`` matrix (singular values 1, so at initialisation
the linearised recurrence neither shrinks nor grows the carry along any direction,
which is what a study of vanishing gradients wants to start from), and biases are
zero except the LSTM forget bias and the GRU update bias. PyTorch instead draws
everything from ``U(-1/sqrt(H), 1/sqrt(H))``; :mod:`gatejax.interop` converts its
modules exactly, whatever initialiser made them.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.cells._kit import Activation, Bias, Cell, Chrono
from gatejax.protocol import RecurSplit

__all__ = [
  "GRUGates",
  "GRUOptions",
  "GRUParams",
  "LSTMGates",
  "LSTMOptions",
  "LSTMParams",
  "LSTMState",
  "RNNOptions",
  "RNNParams",
  "gru",
  "lstm",
  "rnn",
]

# ---------------------------------------------------------------------------
# Named data
# ---------------------------------------------------------------------------


class RNNParams(NamedTuple):
  """Elman RNN parameters: ``h_t = activation(x_t w_x + h_{t-1} w_h + b)``."""

  w_x: Float[Array, "input hidden"]
  w_h: Float[Array, "hidden hidden"]
  b: Float[Array, " hidden"]


class GRUParams(NamedTuple):
  """GRU parameters, gate blocks ``r, z, n`` along the last axis.

  ``b_x`` and ``b_h`` are kept apart (as PyTorch's ``bias_ih`` and ``bias_hh``)
  because with ``reset="after"`` the candidate reads ``b_xn`` outside and ``b_hn``
  inside the reset product. With ``reset="before"`` only their sum matters.
  """

  w_x: Float[Array, "input 3*hidden"]
  w_h: Float[Array, "hidden 3*hidden"]
  b_x: Float[Array, " 3*hidden"]
  b_h: Float[Array, " 3*hidden"]


class LSTMParams(NamedTuple):
  """LSTM parameters, gate blocks ``i, f, g, o`` along the last axis.

  One bias: PyTorch's ``bias_ih + bias_hh``.
  """

  w_x: Float[Array, "input 4*hidden"]
  w_h: Float[Array, "hidden 4*hidden"]
  b: Float[Array, " 4*hidden"]


class LSTMState(NamedTuple):
  """The LSTM carry: hidden state ``h`` (also the output) and memory cell ``c``."""

  h: Float[Array, "*batch hidden"]
  c: Float[Array, "*batch hidden"]


class GRUGates(NamedTuple):
  """GRU activations of one step: reset ``r``, update ``z`` (1 keeps), candidate ``n``."""

  r: Array
  z: Array
  n: Array


class LSTMGates(NamedTuple):
  """LSTM activations of one step: input ``i``, forget ``f``, candidate ``g``, output ``o``."""

  i: Array
  f: Array
  g: Array
  o: Array


class RNNOptions(NamedTuple):
  """The options :func:`rnn` was called with (``cell.options``)."""

  activation: Activation


class GRUOptions(NamedTuple):
  """The options :func:`gru` was called with (``cell.options``)."""

  reset: Literal["after", "before"]
  update_bias: Bias
  gate_fn: Activation
  activation: Activation


class LSTMOptions(NamedTuple):
  """The options :func:`lstm` was called with (``cell.options``)."""

  forget_bias: Bias
  gate_fn: Activation
  activation: Activation


# ---------------------------------------------------------------------------
# Elman RNN
# ---------------------------------------------------------------------------


@_kit.memoized
def rnn(hidden_size: int, *, activation: Activation = jnp.tanh) -> Cell:
  r"""Elman recurrent cell.

  .. math:: h_t = \phi(x_t W_x + h_{t-1} W_h + b)

  with :math:`\phi` = ``activation`` (``jnp.tanh``; ``jax.nn.relu`` gives PyTorch's
  ``nonlinearity="relu"``).

  Args:
    hidden_size: number of hidden units.
    activation: the elementwise nonlinearity :math:`\phi`.

  Returns:
    A :class:`Cell` with :class:`RNNParams` and an array carry ``h``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rnn(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> h, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> y.shape
    (2, 8)
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> RNNParams:
    _kit.check_input_size(input_size)
    w_x, w_h = _kit.weights(key, input_size, H, 1, dtype)
    return RNNParams(w_x=w_x, w_h=w_h, b=jnp.zeros((H,), dtype))

  def project(params: RNNParams, x: Array) -> Array:
    return _kit.add_bias(x @ params.w_x, params.b)

  def combine(h: Array, px: Array, hh: Array) -> tuple[Array, Array, tuple[()]]:
    h = activation(px + hh)
    return h, h, ()

  split = RecurSplit(hidden=_kit.identity, mix=_kit.matmul_w_h, combine=combine)
  recur = split.recur

  return _kit.build(
    "rnn",
    H,
    title=DISPLAY_NAMES["rnn"],
    init=init,
    project=project,
    recur=recur,
    options=RNNOptions(activation=activation),
    split=split,
  )


# ---------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------


@_kit.memoized
def gru(
  hidden_size: int,
  *,
  reset: Literal["after", "before"] = "after",
  update_bias: Bias = 0.0,
  gate_fn: Activation = jax.nn.sigmoid,
  activation: Activation = jnp.tanh,
) -> Cell:
  r"""Gated recurrent unit, gate order ``r, z, n``; ``z`` is the *keep* gate.

  .. math::

    r_t &= \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r) \\
    z_t &= \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z) \\
    h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

  with the candidate :math:`\tilde h_t` in one of two published conventions:

  * ``reset="after"`` (cuDNN, PyTorch, Flax; the default):
    :math:`\tilde h_t = \phi(x_t W_{xn} + b_{xn} + r_t \odot (h_{t-1} W_{hn} + b_{hn}))`.
  * ``reset="before"`` (Cho et al. 2014; Dive into Deep Learning):
    :math:`\tilde h_t = \phi(x_t W_{xh} + (r_t \odot h_{t-1}) W_{hh} + b_h)`.

  The candidate always includes :math:`W_{hh}` and its bias, as in Cho et al. and the
  book that the seed article cites (the article's printed formula drops them).
  :math:`\sigma` is ``gate_fn`` and :math:`\phi` is ``activation``. The biases of
  ``r`` and ``z`` are ``b_x + b_h`` of their blocks.

  Args:
    hidden_size: number of hidden units.
    reset: where the reset gate applies, ``"after"`` or ``"before"`` the recurrent matmul.
    update_bias: initial bias of ``z`` written into ``b_x`` by ``init`` (positive keeps
      more of the past); a float or :func:`~gatejax.cells.chrono`.
    gate_fn: the gate nonlinearity :math:`\sigma`.
    activation: the candidate nonlinearity :math:`\phi`.

  Returns:
    A :class:`Cell` with :class:`GRUParams`, an array carry ``h`` and :class:`GRUGates`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(8, reset="before")
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.w_h.shape
    (8, 24)
    >>> h, y = cell.step(params, cell.initial_carry(), jnp.ones(3))
    >>> y.shape
    (8,)
  """
  _kit.check_hidden_size(hidden_size)
  if reset not in ("after", "before"):
    raise ValueError(f'reset must be "after" or "before", got {reset!r}')
  _kit.check_bias("update_bias", update_bias)
  _kit.check_callable("gate_fn", gate_fn)
  _kit.check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> GRUParams:
    _kit.check_input_size(input_size)
    k_w, k_b = jax.random.split(key)
    w_x, w_h = _kit.weights(k_w, input_size, H, 3, dtype)
    b_x = jnp.zeros((3 * H,), dtype).at[H : 2 * H].set(_kit.bias_values(k_b, update_bias, H, dtype))
    return GRUParams(w_x=w_x, w_h=w_h, b_x=b_x, b_h=jnp.zeros((3 * H,), dtype))

  def project(params: GRUParams, x: Array) -> Array:
    return _kit.add_bias(x @ params.w_x, params.b_x)

  def mix_after(params: GRUParams, h: Array) -> Array:
    return _kit.add_bias(h @ params.w_h, params.b_h)

  def combine_after(h: Array, px: Array, hh: Array) -> tuple[Array, Array, GRUGates]:
    px_r, px_z, px_n = _kit.split(px, 3)
    hh_r, hh_z, hh_n = _kit.split(hh, 3)
    r = gate_fn(px_r + hh_r)
    z = gate_fn(px_z + hh_z)
    n = activation(px_n + r * hh_n)
    h = z * h + (1 - z) * n
    return h, h, GRUGates(r=r, z=z, n=n)

  def recur_before(params: GRUParams, h: Array, px: Array) -> tuple[Array, Array, GRUGates]:
    px_r, px_z, px_n = _kit.split(px, 3)
    w_h_rz, w_h_n = params.w_h[:, : 2 * H], params.w_h[:, 2 * H :]
    hh_r, hh_z = _kit.split(_kit.add_bias(h @ w_h_rz, params.b_h[: 2 * H]), 2)
    r = gate_fn(px_r + hh_r)
    z = gate_fn(px_z + hh_z)
    n = activation(px_n + _kit.add_bias((r * h) @ w_h_n, params.b_h[2 * H :]))
    h = z * h + (1 - z) * n
    return h, h, GRUGates(r=r, z=z, n=n)

  if reset == "after":
    split = RecurSplit(hidden=_kit.identity, mix=mix_after, combine=combine_after)
    recur = split.recur
  else:
    split, recur = None, recur_before

  return _kit.build(
    "gru",
    H,
    title=DISPLAY_NAMES["gru"],
    init=init,
    project=project,
    recur=recur,
    options=GRUOptions(
      reset=reset, update_bias=update_bias, gate_fn=gate_fn, activation=activation
    ),
    split=split,
    gate_names=("r", "z"),
    keep_write=_gru_keep_write,
    init_only=("update_bias",),
  )


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------


@_kit.memoized
def lstm(
  hidden_size: int,
  *,
  forget_bias: Bias = 1.0,
  gate_fn: Activation = jax.nn.sigmoid,
  activation: Activation = jnp.tanh,
) -> Cell:
  r"""Long short-term memory cell, gate order ``i, f, g, o``, carry ``LSTMState(h, c)``.

  .. math::

    i_t, f_t, o_t &= \sigma(x_t W_{x\cdot} + h_{t-1} W_{h\cdot} + b_\cdot) \\
    \tilde c_t &= \phi(x_t W_{xc} + h_{t-1} W_{hc} + b_c) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot \tilde c_t \\
    h_t &= o_t \odot \phi(c_t)

  :math:`\sigma` is ``gate_fn`` and :math:`\phi` is ``activation`` (applied to the
  candidate and to the cell output, as in PyTorch and Flax). Unlike the GRU's
  :math:`z` and :math:`1 - z`, :math:`f` and :math:`i` need not sum to 1.

  Args:
    hidden_size: number of hidden units.
    forget_bias: initial bias of ``f`` written into the parameters by ``init``
      (Jozefowicz et al. 2015 recommend 1); a float or :func:`~gatejax.cells.chrono`, which also
      sets the input-gate bias to minus the forget-gate bias.
    gate_fn: the gate nonlinearity :math:`\sigma`.
    activation: the candidate and output nonlinearity :math:`\phi`.

  Returns:
    A :class:`Cell` with :class:`LSTMParams`, an :class:`LSTMState` carry and
    :class:`LSTMGates`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lstm(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> carry, y = cell.step(params, cell.initial_carry((5,)), jnp.ones((5, 3)))
    >>> carry.c.shape, y.shape
    ((5, 8), (5, 8))
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_bias("forget_bias", forget_bias)
  _kit.check_callable("gate_fn", gate_fn)
  _kit.check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> LSTMParams:
    _kit.check_input_size(input_size)
    k_w, k_b = jax.random.split(key)
    w_x, w_h = _kit.weights(k_w, input_size, H, 4, dtype)
    b_f = _kit.bias_values(k_b, forget_bias, H, dtype)
    b = jnp.zeros((4 * H,), dtype).at[H : 2 * H].set(b_f)
    if isinstance(forget_bias, Chrono):
      b = b.at[:H].set(-b_f)
    return LSTMParams(w_x=w_x, w_h=w_h, b=b)

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> LSTMState:
    zeros = jnp.zeros((*tuple(batch_shape), H), dtype)
    return LSTMState(h=zeros, c=zeros)

  def project(params: LSTMParams, x: Array) -> Array:
    return _kit.add_bias(x @ params.w_x, params.b)

  def hidden(carry: LSTMState) -> Array:
    return carry.h

  def combine(carry: LSTMState, px: Array, hh: Array) -> tuple[LSTMState, Array, LSTMGates]:
    a_i, a_f, a_g, a_o = _kit.split(px + hh, 4)
    i, f, g, o = gate_fn(a_i), gate_fn(a_f), activation(a_g), gate_fn(a_o)
    c = f * carry.c + i * g
    h = o * activation(c)
    return LSTMState(h=h, c=c), h, LSTMGates(i=i, f=f, g=g, o=o)

  split = RecurSplit(hidden=hidden, mix=_kit.matmul_w_h, combine=combine)
  recur = split.recur

  return _kit.build(
    "lstm",
    H,
    title=DISPLAY_NAMES["lstm"],
    init=init,
    initial_carry=initial_carry,
    project=project,
    recur=recur,
    options=LSTMOptions(forget_bias=forget_bias, gate_fn=gate_fn, activation=activation),
    split=split,
    gate_names=("i", "f", "o"),
    keep_write=_lstm_keep_write,
    init_only=("forget_bias",),
  )


def _gru_keep_write(gates: GRUGates) -> tuple[Array, Array]:
  return gates.z, 1 - gates.z


def _lstm_keep_write(gates: LSTMGates) -> tuple[Array, Array]:
  return gates.f, gates.i


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (rnn, gru, lstm)
