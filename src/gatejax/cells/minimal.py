r"""Minimal gated cells: MGU, minimalRNN, minGRU and minLSTM.

Four answers to "how little gating keeps a gradient alive?", each a :class:`~gatejax.cells.Cell`
built like the classic ones (fused gate matrices, ``project``/``recur``, gates recorded):

===================  ===============================  ===========  ==========================
cell                 paper                            carry        recurrence in the carry
===================  ===============================  ===========  ==========================
:func:`mgu`          Zhou et al. 2016                 ``h``        nonlinear (one gate)
:func:`minimal_rnn`  Chen, Pennington &               ``h``        nonlinear (gate reads h)
                     Schoenholz 2018
:func:`min_gru`      Feng et al. 2024                 ``h``        **linear**
:func:`min_lstm`     Feng et al. 2024                 ``h``        **linear**
===================  ===============================  ===========  ==========================

The gates of minGRU and minLSTM read only the input, so :math:`h_t = a_t \odot h_{t-1} + b_t`
with :math:`a_t, b_t` functions of :math:`x_t` alone. They offer that form as
``affine`` (:class:`gatejax.affine.Affine`): :func:`gatejax.scan` can evaluate them with
``jax.lax.associative_scan`` (all steps at once, :math:`O(\log T)` depth;
``impl="associative"``, the default off the CPU), and their Jacobian
:math:`\partial h_t / \partial h_{t-1} = \mathrm{diag}(a_t)` is exactly diagonal, with entries
in :math:`(0, 1)` for sigmoid gates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.cells._kit as _kit
from gatejax.affine import Affine
from gatejax.cells._kit import Activation, Bias, Cell
from gatejax.protocol import RecurSplit

__all__ = [
  "MGUGates",
  "MGUOptions",
  "MGUParams",
  "MinGRUGates",
  "MinGRUParams",
  "MinLSTMGates",
  "MinLSTMParams",
  "MinOptions",
  "MinimalOptions",
  "MinimalRNNGates",
  "MinimalRNNParams",
  "mgu",
  "min_gru",
  "min_lstm",
  "minimal_rnn",
]


# ---------------------------------------------------------------------------
# MGU
# ---------------------------------------------------------------------------


class MGUParams(NamedTuple):
  """MGU parameters, gate blocks ``f, n`` along the last axis (Flax linen's ``MGUCell``).

  ``b_hn`` is the bias of ``h W_hn``, inside the reset product when ``reset_gate=True``;
  without the reset gate it only ever appears beside ``b_xn`` (``init`` sets it to zero,
  as linen has no such bias then).
  """

  w_x: Float[Array, "input 2*hidden"]
  w_h: Float[Array, "hidden 2*hidden"]
  b_x: Float[Array, " 2*hidden"]
  b_hn: Float[Array, " hidden"]


class MGUGates(NamedTuple):
  """MGU activations of one step: forget gate ``f`` (1 keeps) and candidate ``n``."""

  f: Array
  n: Array


class MGUOptions(NamedTuple):
  """The options :func:`mgu` was called with (``cell.options``)."""

  forget_bias: Bias
  reset_gate: bool
  gate_fn: Activation
  activation: Activation


def _forget_keep_write(gates: MGUGates) -> tuple[Array, Array]:
  return gates.f, 1 - gates.f


@_kit.memoized
def mgu(
  hidden_size: int,
  *,
  forget_bias: Bias = 1.0,
  reset_gate: bool = True,
  gate_fn: Activation = jax.nn.sigmoid,
  activation: Activation = jnp.tanh,
) -> Cell:
  r"""Minimal gated unit (Zhou et al. 2016): one gate that both forgets and resets.

  .. math::

    f_t &= \sigma(x_t W_{xf} + b_{xf} + h_{t-1} W_{hf}) \\
    n_t &= \phi(x_t W_{xn} + b_{xn} + f_t \odot (h_{t-1} W_{hn} + b_{hn})) \\
    h_t &= (1 - f_t) \odot n_t + f_t \odot h_{t-1}

  exactly as Flax linen's ``MGUCell``; with ``reset_gate=False`` the candidate is
  :math:`n_t = \phi(x_t W_{xn} + b_{xn} + h_{t-1} W_{hn})`. :math:`\sigma` is ``gate_fn`` and
  :math:`\phi` is ``activation``.

  Args:
    hidden_size: number of hidden units.
    forget_bias: initial bias of ``f`` written into ``b_x`` by ``init`` (1, as linen); a
      float or :func:`~gatejax.cells.chrono`.
    reset_gate: whether ``f`` also gates the recurrent part of the candidate.
    gate_fn: the gate nonlinearity :math:`\sigma`.
    activation: the candidate nonlinearity :math:`\phi`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`MGUParams`, an array carry ``h`` and
    :class:`MGUGates`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.mgu(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.w_h.shape, float(params.b_x[0])
    ((8, 16), 1.0)
    >>> h, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> y.shape
    (2, 8)
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_bias("forget_bias", forget_bias)
  if not isinstance(reset_gate, bool):
    raise TypeError(f"reset_gate must be a bool, got {reset_gate!r}")
  _kit.check_callable("gate_fn", gate_fn)
  _kit.check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> MGUParams:
    _kit.check_input_size(input_size)
    k_w, k_b = jax.random.split(key)
    w_x, w_h = _kit.weights(k_w, input_size, H, 2, dtype)
    b_x = jnp.zeros((2 * H,), dtype).at[:H].set(_kit.bias_values(k_b, forget_bias, H, dtype))
    return MGUParams(w_x=w_x, w_h=w_h, b_x=b_x, b_hn=jnp.zeros((H,), dtype))

  def project(params: MGUParams, x: Array) -> Array:
    return _kit.add_bias(x @ params.w_x, params.b_x)

  def mix(params: MGUParams, h: Array) -> Array:
    # The f block of the recurrent matmul has no bias (linen's hf has none).
    bias = jnp.concatenate([jnp.zeros_like(params.b_hn), params.b_hn])
    return _kit.add_bias(h @ params.w_h, bias)

  def combine(h: Array, px: Array, hh: Array) -> tuple[Array, Array, MGUGates]:
    px_f, px_n = _kit.split(px, 2)
    hh_f, hh_n = _kit.split(hh, 2)
    f = gate_fn(px_f + hh_f)
    n = activation(px_n + (f * hh_n if reset_gate else hh_n))
    h = (1 - f) * n + f * h
    return h, h, MGUGates(f=f, n=n)

  split = RecurSplit(hidden=_kit.identity, mix=mix, combine=combine)
  recur = split.recur
  return _kit.build(
    "mgu",
    H,
    title=DISPLAY_NAMES["mgu"],
    init=init,
    project=project,
    recur=recur,
    options=MGUOptions(
      forget_bias=forget_bias, reset_gate=reset_gate, gate_fn=gate_fn, activation=activation
    ),
    split=split,
    gate_names=("f",),
    keep_write=_forget_keep_write,
    init_only=("forget_bias",),
  )


# ---------------------------------------------------------------------------
# minimalRNN
# ---------------------------------------------------------------------------


class MinimalRNNParams(NamedTuple):
  """minimalRNN parameters: ``z = φ(x w_x + b_z)``, ``u = σ(h w_uh + z w_uz + b_u)``."""

  w_x: Float[Array, "input hidden"]
  b_z: Float[Array, " hidden"]
  w_uh: Float[Array, "hidden hidden"]
  w_uz: Float[Array, "hidden hidden"]
  b_u: Float[Array, " hidden"]


class MinimalRNNGates(NamedTuple):
  """minimalRNN activations of one step: update gate ``u`` (1 keeps), input map ``z``."""

  u: Array
  z: Array


class MinimalOptions(NamedTuple):
  """The options :func:`minimal_rnn` was called with (``cell.options``)."""

  update_bias: Bias
  gate_fn: Activation
  activation: Activation


def _update_keep_write(gates: MinimalRNNGates) -> tuple[Array, Array]:
  return gates.u, 1 - gates.u


@_kit.memoized
def minimal_rnn(
  hidden_size: int,
  *,
  update_bias: Bias = 0.0,
  gate_fn: Activation = jax.nn.sigmoid,
  activation: Activation = jnp.tanh,
) -> Cell:
  r"""minimalRNN (Chen, Pennington & Schoenholz 2018, "Gating enables signal propagation").

  .. math::

    z_t &= \phi(x_t W_x + b_z) \\
    u_t &= \sigma(h_{t-1} W_{uh} + z_t W_{uz} + b_u) \\
    h_t &= u_t \odot h_{t-1} + (1 - u_t) \odot z_t

  The input is mapped into the state space once (:math:`z_t`, which reads no state), and a
  single update gate interpolates between the old state and it. :math:`z_t W_{uz}` reads
  no state either, so it belongs to the input half (``project``), and the recurrence has
  one recurrent matmul, :math:`h_{t-1} W_{uh}`.

  Args:
    hidden_size: number of hidden units.
    update_bias: initial ``b_u`` (positive keeps more of the past); a float or
      :func:`~gatejax.cells.chrono`.
    gate_fn: the gate nonlinearity :math:`\sigma`.
    activation: the input map's nonlinearity :math:`\phi`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`MinimalRNNParams`, an array carry ``h`` and
    :class:`MinimalRNNGates`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.minimal_rnn(8, update_bias=gj.chrono(50))
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> params.w_uz.shape, bool((params.b_u >= 0).all())
    ((8, 8), True)
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_bias("update_bias", update_bias)
  _kit.check_callable("gate_fn", gate_fn)
  _kit.check_callable("activation", activation)
  H = hidden_size

  def init(
    key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32
  ) -> MinimalRNNParams:
    _kit.check_input_size(input_size)
    k_w, k_z, k_b = jax.random.split(key, 3)
    w_x, w_uh = _kit.weights(k_w, input_size, H, 1, dtype)
    _, w_uz = _kit.weights(k_z, 1, H, 1, dtype)
    return MinimalRNNParams(
      w_x=w_x,
      b_z=jnp.zeros((H,), dtype),
      w_uh=w_uh,
      w_uz=w_uz,
      b_u=_kit.bias_values(k_b, update_bias, H, dtype),
    )

  def project(params: MinimalRNNParams, x: Array) -> Array:
    z = activation(_kit.add_bias(x @ params.w_x, params.b_z))
    return jnp.concatenate([z, _kit.add_bias(z @ params.w_uz, params.b_u)], axis=-1)

  def mix(params: MinimalRNNParams, h: Array) -> Array:
    return h @ params.w_uh

  def combine(h: Array, px: Array, hh: Array) -> tuple[Array, Array, MinimalRNNGates]:
    z, pu = _kit.split(px, 2)
    u = gate_fn(pu + hh)
    h = u * h + (1 - u) * z
    return h, h, MinimalRNNGates(u=u, z=z)

  split = RecurSplit(hidden=_kit.identity, mix=mix, combine=combine)
  recur = split.recur
  return _kit.build(
    "minimal_rnn",
    H,
    title=DISPLAY_NAMES["minimal_rnn"],
    init=init,
    project=project,
    recur=recur,
    options=MinimalOptions(update_bias=update_bias, gate_fn=gate_fn, activation=activation),
    split=split,
    gate_names=("u",),
    keep_write=_update_keep_write,
    init_only=("update_bias",),
  )


# ---------------------------------------------------------------------------
# minGRU and minLSTM: linear in the carry
# ---------------------------------------------------------------------------


class MinGRUParams(NamedTuple):
  """minGRU parameters, blocks ``z, h̃`` along the last axis: both read only the input."""

  w_x: Float[Array, "input 2*hidden"]
  b: Float[Array, " 2*hidden"]


class MinGRUGates(NamedTuple):
  """minGRU activations of one step: ``z`` (1 *writes* the candidate, as in the paper)."""

  z: Array


class MinLSTMParams(NamedTuple):
  """minLSTM parameters, blocks ``f, i, h̃`` along the last axis: all read only the input."""

  w_x: Float[Array, "input 3*hidden"]
  b: Float[Array, " 3*hidden"]


class MinLSTMGates(NamedTuple):
  """minLSTM activations of one step: forget ``f`` and input ``i``, before normalisation."""

  f: Array
  i: Array


class MinOptions(NamedTuple):
  """The options :func:`min_gru` or :func:`min_lstm` was called with (``cell.options``)."""

  gate_fn: Activation
  negative_eigenvalues: bool


def _linear_init(G: int, H: int):
  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32):
    _kit.check_input_size(input_size)
    w_x = _kit.lecun_normal(key, (input_size, G * H), dtype)
    return w_x, jnp.zeros((G * H,), dtype)

  return init


def _input_projection(params: MinGRUParams | MinLSTMParams, x: Array) -> Array:
  return _kit.add_bias(x @ params.w_x, params.b)


def _min_gru_coefficients(
  gate_fn: Activation, negative: bool, px: Array
) -> tuple[Array, Array, MinGRUGates]:
  a_z, candidate = _kit.split(px, 2)
  z = gate_fn(a_z)
  keep = 1 - 2 * z if negative else 1 - z
  return keep, z * candidate, MinGRUGates(z=z)


def _min_lstm_coefficients(
  gate_fn: Activation, negative: bool, px: Array
) -> tuple[Array, Array, MinLSTMGates]:
  a_f, a_i, candidate = _kit.split(px, 3)
  f, i = gate_fn(a_f), gate_fn(a_i)
  total = f + i
  keep = (f - i) / total if negative else f / total
  return keep, i / total * candidate, MinLSTMGates(f=f, i=i)


def _linear_cell(
  kind: str, H: int, G: int, params_type: type, coefficients, gate_fn, negative: bool, **extra
):
  init_arrays = _linear_init(G, H)

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32):
    return params_type(*init_arrays(key, input_size, dtype=dtype))

  def recur(params, h: Array, px: Array):
    a, b, gates = coefficients(gate_fn, negative, px)
    h = a * h + b
    return h, h, gates

  def affine(params, xs: Array) -> Affine:
    a, b, _ = coefficients(gate_fn, negative, _input_projection(params, xs))
    return Affine(a, b)

  return _kit.build(
    kind,
    H,
    title=DISPLAY_NAMES[kind],
    init=init,
    project=_input_projection,
    recur=recur,
    options=MinOptions(gate_fn=gate_fn, negative_eigenvalues=negative),
    affine=affine,
    **extra,
  )


def _min_gru_keep_write(negative: bool):
  def keep_write(gates: MinGRUGates) -> tuple[Array, Array]:
    return (1 - 2 * gates.z if negative else 1 - gates.z), gates.z

  return keep_write


def _min_lstm_keep_write(negative: bool):
  def keep_write(gates: MinLSTMGates) -> tuple[Array, Array]:
    total = gates.f + gates.i
    keep = (gates.f - gates.i) / total if negative else gates.f / total
    return keep, gates.i / total

  return keep_write


def _check_flag(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise TypeError(f"{name} must be a bool, got {value!r}")


@_kit.memoized
def min_gru(
  hidden_size: int, *, gate_fn: Activation = jax.nn.sigmoid, negative_eigenvalues: bool = False
) -> Cell:
  r"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gate reads only ``x``.

  .. math::

    z_t &= \sigma(x_t W_z + b_z), \qquad \tilde h_t = x_t W_h + b_h \\
    h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

  Note the paper's convention: :math:`z_t` *writes* (``gj.gru``'s ``z`` keeps). Nothing
  inside the recurrence reads :math:`h_{t-1}` but the product with :math:`1 - z_t`, so the
  step is affine in the carry (``cell.affine``): :func:`gatejax.scan` can run it with
  ``jax.lax.associative_scan`` (``impl="associative"``; the default off the CPU), and its
  Jacobian :math:`\partial h_t / \partial h_{t-1} = \mathrm{diag}(1 - z_t)` is exactly
  diagonal, in :math:`(0, 1)` for a sigmoid gate.

  ``negative_eigenvalues=True`` widens the keep coefficient from :math:`(0, 1)` to
  :math:`(-1, 1)` (Grazzi et al., ICLR 2025: ``Diag(s) → Diag(2s − 1)``), the write term
  unchanged: :math:`h_t = (1 - 2 z_t) \odot h_{t-1} + z_t \odot \tilde h_t`. A recurrence
  linear in its carry with eigenvalues in :math:`[0, 1]` cannot track parity at every length
  in finite precision; with :math:`(-1, 1)` it can (their Theorem 1).

  Args:
    hidden_size: number of hidden units.
    gate_fn: the gate nonlinearity :math:`\sigma`.
    negative_eigenvalues: the keep coefficient :math:`2(1 - z) - 1 = 1 - 2z` instead of
      :math:`1 - z`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`MinGRUParams`, an array carry ``h``,
    :class:`MinGRUGates` and ``affine``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.min_gru(4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> x, h = jnp.ones(2), jnp.zeros(4)
    >>> J = jax.jacrev(lambda h: cell.step(params, h, x)[0])(h)
    >>> bool((J == jnp.diag(jnp.diag(J))).all() and (jnp.diag(J) > 0).all())
    True
    >>> aff = cell.affine(params, jnp.ones((10, 2)))         # h_t = a_t ⊙ h_{t-1} + b_t
    >>> aff.a.shape, aff.form
    ((10, 4), 'diagonal')
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_callable("gate_fn", gate_fn)
  _check_flag("negative_eigenvalues", negative_eigenvalues)
  return _linear_cell(
    "min_gru",
    hidden_size,
    2,
    MinGRUParams,
    _min_gru_coefficients,
    gate_fn,
    negative_eigenvalues,
    gate_names=("z",),
    keep_write=_min_gru_keep_write(negative_eigenvalues),
  )


@_kit.memoized
def min_lstm(
  hidden_size: int, *, gate_fn: Activation = jax.nn.sigmoid, negative_eigenvalues: bool = False
) -> Cell:
  r"""minLSTM (Feng et al. 2024): forget and input gates that read only ``x``, normalised.

  .. math::

    f_t &= \sigma(x_t W_f + b_f), \quad i_t = \sigma(x_t W_i + b_i), \quad
      \tilde h_t = x_t W_h + b_h \\
    h_t &= \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t

  The normalisation makes the kept and the written share sum to one (as the GRU's
  ``z`` and ``1 − z``) and removes the cell state of the LSTM: the carry is ``h`` alone,
  and the step is affine in it (see :func:`min_gru`). ``negative_eigenvalues=True`` keeps
  :math:`\frac{f_t - i_t}{f_t + i_t} \in (-1, 1)` instead (the same write term).

  Args:
    hidden_size: number of hidden units.
    gate_fn: the gate nonlinearity :math:`\sigma` (a gate that can be 0, a ReLU say,
      can make :math:`f_t + i_t = 0`; sigmoid gates never do).
    negative_eigenvalues: the keep coefficient :math:`(f - i)/(f + i)` instead of
      :math:`f/(f + i)`.

  Returns:
    A :class:`~gatejax.cells.Cell` with :class:`MinLSTMParams`, an array carry ``h``,
    :class:`MinLSTMGates` and ``affine``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.min_lstm(4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> carry, ys = gj.scan(cell, params, jnp.ones((100, 3, 2)))
    >>> ys.shape
    (100, 3, 4)
  """
  _kit.check_hidden_size(hidden_size)
  _kit.check_callable("gate_fn", gate_fn)
  _check_flag("negative_eigenvalues", negative_eigenvalues)
  return _linear_cell(
    "min_lstm",
    hidden_size,
    3,
    MinLSTMParams,
    _min_lstm_coefficients,
    gate_fn,
    negative_eigenvalues,
    gate_names=("f", "i"),
    keep_write=_min_lstm_keep_write(negative_eigenvalues),
  )


#: How tables and sentences print each cell of this family.
DISPLAY_NAMES = {
  "mgu": "MGU",
  "minimal_rnn": "minimalRNN",
  "min_gru": "minGRU",
  "min_lstm": "minLSTM",
}
#: The cells of this family, for :mod:`gatejax.cells.names`.
FACTORIES = (mgu, minimal_rnn, min_gru, min_lstm)
