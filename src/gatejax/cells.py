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

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
  "Activation",
  "Bias",
  "Cell",
  "Chrono",
  "GRUGates",
  "GRUOptions",
  "GRUParams",
  "LSTMGates",
  "LSTMOptions",
  "LSTMParams",
  "LSTMState",
  "RNNOptions",
  "RNNParams",
  "RecurSplit",
  "chrono",
  "gru",
  "lstm",
  "rnn",
]

#: A gate or candidate function, elementwise on arrays (``jax.nn.sigmoid``, ``jnp.tanh``).
Activation: TypeAlias = Callable[[Array], Array]
Params: TypeAlias = Any
Carry: TypeAlias = Any


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


class Chrono(NamedTuple):
  """Chrono initialisation of a gate bias (Tallec & Ollivier, ICLR 2018); see :func:`chrono`."""

  max_timescale: float


#: An initial gate bias, written into the parameters by ``init``: a float or :func:`chrono`.
Bias: TypeAlias = float | Chrono


def chrono(max_timescale: float) -> Chrono:
  r"""Chrono initialisation for ``forget_bias`` (LSTM) or ``update_bias`` (GRU).

  The bias of each unit is drawn as :math:`\log u`, :math:`u \sim U(1, T_{max} - 1)`,
  so each unit's keep gate starts at :math:`\sigma(\log u) = u / (1 + u)` and its
  memory has a characteristic time of about :math:`1 + u` steps: timescales spread
  over ``[2, max_timescale]``. For the LSTM the input-gate bias is set to minus the
  forget-gate bias, so a unit that keeps long also writes little.

  Args:
    max_timescale: the longest dependency, in steps, that the cell should be able
      to carry at initialisation. Must be greater than 2.

  Example:
    >>> import jax, gatejax as gj
    >>> cell = gj.lstm(4, forget_bias=gj.chrono(100))
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> b_i, b_f = params.b[:4], params.b[4:8]
    >>> bool((b_f >= 0).all() and (b_i == -b_f).all())
    True
  """
  if not isinstance(max_timescale, int | float) or isinstance(max_timescale, bool):
    raise TypeError(f"max_timescale must be a number, got {type(max_timescale).__name__}")
  if not max_timescale > 2:
    raise ValueError(f"max_timescale must be > 2, got {max_timescale}")
  return Chrono(float(max_timescale))


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


class RecurSplit(NamedTuple):
  r"""``recur`` cut at its recurrent matmul, for runners that differentiate it by hand.

  ``recur(params, carry, px) == combine(carry, px, mix(params, hidden(carry)))``, and
  ``recur`` is built from these three, so they cannot disagree. ``combine`` reads no
  parameters: every parameter the recurrence uses goes through ``mix``, so the weight
  gradient of a whole sequence is one ``jax.vjp`` of ``mix`` with time as a batch axis
  (one large matmul, :math:`\partial W_h = \sum_t h_{t-1}^\top \delta_t`), see
  :mod:`gatejax.fused`.

  Attributes:
    hidden: ``hidden(carry) -> h``, the part of the carry the recurrent matmul reads.
    mix: ``mix(params, h) -> hh``, the recurrent matmul (plus any bias inside it),
      ``(*batch, hidden) -> (*batch, G * hidden)``.
    combine: ``combine(carry, px, hh) -> (carry, y, gates)``, the elementwise rest.
  """

  hidden: Callable[[Carry], Array]
  mix: Callable[[Params, Array], Array]
  combine: Callable[[Carry, Array, Array], tuple[Carry, Array, Any]]


class Cell(NamedTuple):
  r"""A recurrent cell: pure functions and the options that made them.

  Attributes:
    hidden_size: number of hidden units ``H``.
    init: ``init(key, input_size, *, dtype=float32) -> params``.
    initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry`` (zeros).
    step: ``step(params, carry, x) -> (carry, y)``; ``x`` has shape
      ``(*batch, input_size)``, ``y`` has shape ``(*batch, H)``.
    project: ``project(params, x) -> px``, the input half of the pre-activations,
      valid for any leading axes (a whole sequence at once).
    recur: ``recur(params, carry, px) -> (carry, y, gates)``, the recurrent half.
    kind: ``"rnn"``, ``"gru"`` or ``"lstm"``.
    options: the factory's options (:class:`RNNOptions`, :class:`GRUOptions` or
      :class:`LSTMOptions`).
    split: ``recur`` as a :class:`RecurSplit`, or ``None`` where the recurrence has no
      single recurrent matmul (GRU ``reset="before"``: its candidate's matmul reads ``r``).
    gate_names: the fields of ``recur``'s gates that are gates (the candidates ``n`` and
      ``g`` are not): GRU ``("r", "z")``, LSTM ``("i", "f", "o")``, RNN ``()``.
    keep_write: ``keep_write(gates) -> (keep, write)``: the gate that keeps the carry and
      the one that writes the candidate, or ``None`` (RNN).
    linear_recurrence: for a cell linear in its carry, ``(params, xs) -> (a, b)`` with
      :math:`c_t = a_t \odot c_{t-1} + b_t` (see :mod:`gatejax.protocol`), else ``None``.

  Every cell is also a cell in the sense of :mod:`gatejax.protocol`: the runners use
  ``hidden_size``, ``init``, ``initial_carry`` and ``step``, and the other members only as
  optional capabilities.
  """

  hidden_size: int
  init: Callable[..., Params]
  initial_carry: Callable[..., Carry]
  step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
  project: Callable[[Params, Array], Array]
  recur: Callable[[Params, Carry, Array], tuple[Carry, Array, Any]]
  kind: str
  options: Any
  split: RecurSplit | None = None
  gate_names: tuple[str, ...] = ()
  keep_write: Callable[[Any], tuple[Array, Array]] | None = None
  linear_recurrence: Callable[[Params, Array], tuple[Array, Array]] | None = None

  @property
  def name(self) -> str:
    """A short name for messages, e.g. ``"gj.gru(8)"``."""
    return f"gj.{self.kind}({self.hidden_size})"

  def config(self) -> dict[str, Any]:
    """The factory and options that made the cell, as JSON (chrono as ``{"chrono": T}``)."""
    from gatejax.protocol import json_value

    options = {
      k: {"chrono": v.max_timescale} if isinstance(v, Chrono) else json_value(v)
      for k, v in self.options._asdict().items()
    }
    return {"kind": self.kind, "hidden_size": self.hidden_size, **options}


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def _check_hidden_size(hidden_size: int) -> None:
  if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
    raise TypeError(f"hidden_size must be an int, got {type(hidden_size).__name__}")
  if hidden_size < 1:
    raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")


def _check_bias(name: str, bias: Bias) -> None:
  if isinstance(bias, Chrono):
    return
  if not isinstance(bias, int | float) or isinstance(bias, bool):
    raise TypeError(f"{name} must be a float or gj.chrono(max_timescale), got {bias!r}")


def _check_callable(name: str, fn: Any) -> None:
  if not callable(fn):
    raise TypeError(f"{name} must be callable, got {fn!r}")


def _check_input_size(input_size: int) -> None:
  if not isinstance(input_size, int) or isinstance(input_size, bool):
    raise TypeError(f"input_size must be an int, got {type(input_size).__name__}")
  if input_size < 1:
    raise ValueError(f"input_size must be >= 1, got {input_size}")


def _bias_values(key: PRNGKeyArray, bias: Bias, hidden_size: int, dtype: DTypeLike) -> Array:
  """The initial value of a gate bias: a constant or a chrono draw, shape ``(H,)``."""
  if isinstance(bias, Chrono):
    u = jax.random.uniform(key, (hidden_size,), minval=1.0, maxval=bias.max_timescale - 1.0)
    return jnp.log(u).astype(dtype)
  return jnp.full((hidden_size,), bias, dtype)


def _weights(
  key: PRNGKeyArray, input_size: int, hidden_size: int, gates: int, dtype: DTypeLike
) -> tuple[Array, Array]:
  """LeCun-normal input matrix and per-gate orthogonal recurrent blocks."""
  k_x, k_h = jax.random.split(key)
  # The QR behind the orthogonal initialiser has no half-precision kernel (bfloat16 fails on
  # CPU): draw in float32 and round, which is also the most accurate half-precision init.
  draw = jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype
  w_x = jax.nn.initializers.lecun_normal()(k_x, (input_size, gates * hidden_size), draw)
  orthogonal = jax.nn.initializers.orthogonal()
  blocks = [orthogonal(k, (hidden_size, hidden_size), draw) for k in jax.random.split(k_h, gates)]
  return w_x.astype(dtype), jnp.concatenate(blocks, axis=-1).astype(dtype)


def _add_bias(a: Array, b: Array) -> Array:
  """``a + b`` with ``b`` of shape ``(n,)`` broadcast explicitly over ``a``'s leading axes.

  Explicit so that the library runs under ``jax_numpy_rank_promotion="raise"``.
  """
  return a + jnp.reshape(b, (1,) * (a.ndim - 1) + b.shape)


def _split(a: Array, parts: int) -> list[Array]:
  return jnp.split(a, parts, axis=-1)


def _zeros_carry(hidden_size: int) -> Callable[..., Array]:
  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> Array:
    return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)

  return initial_carry


def _recur_from(split: RecurSplit) -> Callable:
  def recur(params: Params, carry: Carry, px: Array) -> tuple[Carry, Array, Any]:
    return split.combine(carry, px, split.mix(params, split.hidden(carry)))

  return recur


def _matmul_w_h(params: Params, h: Array) -> Array:
  return h @ params.w_h


def _identity(carry: Array) -> Array:
  return carry


def _memoized(factory: Callable[..., Cell]) -> Callable[..., Cell]:
  """Cache a cell factory: the same options give the same :class:`Cell` object.

  A cell holds closures, so two separately built cells never compare equal, and every
  jitted function that takes a cell as a static argument (``gj.scan`` among them) would
  compile again for each. Cached, ``gj.lstm(8) is gj.lstm(8)`` and compilations are shared.
  Unhashable options skip the cache and reach the factory's own argument checks.
  """
  cached = functools.lru_cache(maxsize=512, typed=True)(factory)
  signature = inspect.signature(factory)

  @functools.wraps(factory)
  def wrapper(*args: Any, **kwargs: Any) -> Cell:
    try:
      bound = signature.bind(*args, **kwargs)
      bound.apply_defaults()  # gj.gru(8) and gj.gru(8, reset="after") share one entry
      hash(tuple(bound.arguments.items()))
    except TypeError:
      return factory(*args, **kwargs)
    return cached(*bound.args, **bound.kwargs)

  return wrapper


@functools.lru_cache(maxsize=512)
def _expected_params(init: Callable, input_size: int) -> Any:
  return jax.eval_shape(lambda: init(jax.random.key(0), input_size))


def _make_step(
  kind: str, hidden_size: int, init: Callable, project: Callable, recur: Callable
) -> Callable:
  """``step = recur ∘ project``, checking its arguments at trace time (no broadcasting).

  The runners call ``project`` and ``recur`` themselves and check once per sequence; a
  direct call of ``step`` gets the same checks, so a carry of another batch shape or
  width, or a bias of shape ``(1,)``, is an error instead of a silent broadcast.
  """
  name = f"gj.{kind}({hidden_size})"

  def step(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    _check_step_arguments(name, init, hidden_size, params, carry, x)
    carry, y, _ = recur(params, carry, project(params, x))
    return carry, y

  return step


def _build(
  kind: str,
  hidden_size: int,
  *,
  init: Callable[..., Params],
  project: Callable,
  recur: Callable,
  options: Any,
  initial_carry: Callable[..., Carry] | None = None,
  **extra: Any,
) -> Cell:
  """A built-in :class:`Cell`: ``step`` made from ``project`` and ``recur`` (checked), and a
  zero array carry unless another ``initial_carry`` is given; ``extra`` are the optional
  members (``split``, ``gate_names``, ``keep_write``, ``linear_recurrence``)."""
  return Cell(
    hidden_size=hidden_size,
    init=init,
    initial_carry=initial_carry or _zeros_carry(hidden_size),
    step=_make_step(kind, hidden_size, init, project, recur),
    project=project,
    recur=recur,
    kind=kind,
    options=options,
    **extra,
  )


def _check_step_arguments(
  name: str, init: Callable, hidden_size: int, params: Params, carry: Carry, x: Any
) -> None:
  from gatejax import _validate

  shape = tuple(jnp.shape(x))
  if not shape:
    raise ValueError(f"x must have shape (*batch, input_size), got a scalar for {name}")
  what = f"{name} reading x of {shape[-1]} features"
  _validate.tree(_expected_params(init, shape[-1]), params, name="params", what=what)
  want = (*shape[:-1], hidden_size)
  for leaf in jax.tree.leaves(carry):
    if tuple(jnp.shape(leaf)) != want:
      raise ValueError(
        f"carry must have shape {want} (x's batch shape {shape[:-1]}, hidden_size) per leaf "
        f"for {name}, got {tuple(jnp.shape(leaf))}"
      )


# ---------------------------------------------------------------------------
# Elman RNN
# ---------------------------------------------------------------------------


@_memoized
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
  _check_hidden_size(hidden_size)
  _check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> RNNParams:
    _check_input_size(input_size)
    w_x, w_h = _weights(key, input_size, H, 1, dtype)
    return RNNParams(w_x=w_x, w_h=w_h, b=jnp.zeros((H,), dtype))

  def project(params: RNNParams, x: Array) -> Array:
    return _add_bias(x @ params.w_x, params.b)

  def combine(h: Array, px: Array, hh: Array) -> tuple[Array, Array, tuple[()]]:
    h = activation(px + hh)
    return h, h, ()

  split = RecurSplit(hidden=_identity, mix=_matmul_w_h, combine=combine)
  recur = _recur_from(split)

  return _build(
    "rnn",
    H,
    init=init,
    project=project,
    recur=recur,
    options=RNNOptions(activation=activation),
    split=split,
  )


# ---------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------


@_memoized
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
      more of the past); a float or :func:`chrono`.
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
  _check_hidden_size(hidden_size)
  if reset not in ("after", "before"):
    raise ValueError(f'reset must be "after" or "before", got {reset!r}')
  _check_bias("update_bias", update_bias)
  _check_callable("gate_fn", gate_fn)
  _check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> GRUParams:
    _check_input_size(input_size)
    k_w, k_b = jax.random.split(key)
    w_x, w_h = _weights(k_w, input_size, H, 3, dtype)
    b_x = jnp.zeros((3 * H,), dtype).at[H : 2 * H].set(_bias_values(k_b, update_bias, H, dtype))
    return GRUParams(w_x=w_x, w_h=w_h, b_x=b_x, b_h=jnp.zeros((3 * H,), dtype))

  def project(params: GRUParams, x: Array) -> Array:
    return _add_bias(x @ params.w_x, params.b_x)

  def mix_after(params: GRUParams, h: Array) -> Array:
    return _add_bias(h @ params.w_h, params.b_h)

  def combine_after(h: Array, px: Array, hh: Array) -> tuple[Array, Array, GRUGates]:
    px_r, px_z, px_n = _split(px, 3)
    hh_r, hh_z, hh_n = _split(hh, 3)
    r = gate_fn(px_r + hh_r)
    z = gate_fn(px_z + hh_z)
    n = activation(px_n + r * hh_n)
    h = z * h + (1 - z) * n
    return h, h, GRUGates(r=r, z=z, n=n)

  def recur_before(params: GRUParams, h: Array, px: Array) -> tuple[Array, Array, GRUGates]:
    px_r, px_z, px_n = _split(px, 3)
    w_h_rz, w_h_n = params.w_h[:, : 2 * H], params.w_h[:, 2 * H :]
    hh_r, hh_z = _split(_add_bias(h @ w_h_rz, params.b_h[: 2 * H]), 2)
    r = gate_fn(px_r + hh_r)
    z = gate_fn(px_z + hh_z)
    n = activation(px_n + _add_bias((r * h) @ w_h_n, params.b_h[2 * H :]))
    h = z * h + (1 - z) * n
    return h, h, GRUGates(r=r, z=z, n=n)

  if reset == "after":
    split = RecurSplit(hidden=_identity, mix=mix_after, combine=combine_after)
    recur = _recur_from(split)
  else:
    split, recur = None, recur_before

  return _build(
    "gru",
    H,
    init=init,
    project=project,
    recur=recur,
    options=GRUOptions(
      reset=reset, update_bias=update_bias, gate_fn=gate_fn, activation=activation
    ),
    split=split,
    gate_names=("r", "z"),
    keep_write=_gru_keep_write,
  )


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------


@_memoized
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
      (Jozefowicz et al. 2015 recommend 1); a float or :func:`chrono`, which also
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
  _check_hidden_size(hidden_size)
  _check_bias("forget_bias", forget_bias)
  _check_callable("gate_fn", gate_fn)
  _check_callable("activation", activation)
  H = hidden_size

  def init(key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32) -> LSTMParams:
    _check_input_size(input_size)
    k_w, k_b = jax.random.split(key)
    w_x, w_h = _weights(k_w, input_size, H, 4, dtype)
    b_f = _bias_values(k_b, forget_bias, H, dtype)
    b = jnp.zeros((4 * H,), dtype).at[H : 2 * H].set(b_f)
    if isinstance(forget_bias, Chrono):
      b = b.at[:H].set(-b_f)
    return LSTMParams(w_x=w_x, w_h=w_h, b=b)

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> LSTMState:
    zeros = jnp.zeros((*tuple(batch_shape), H), dtype)
    return LSTMState(h=zeros, c=zeros)

  def project(params: LSTMParams, x: Array) -> Array:
    return _add_bias(x @ params.w_x, params.b)

  def hidden(carry: LSTMState) -> Array:
    return carry.h

  def combine(carry: LSTMState, px: Array, hh: Array) -> tuple[LSTMState, Array, LSTMGates]:
    a_i, a_f, a_g, a_o = _split(px + hh, 4)
    i, f, g, o = gate_fn(a_i), gate_fn(a_f), activation(a_g), gate_fn(a_o)
    c = f * carry.c + i * g
    h = o * activation(c)
    return LSTMState(h=h, c=c), h, LSTMGates(i=i, f=f, g=g, o=o)

  split = RecurSplit(hidden=hidden, mix=_matmul_w_h, combine=combine)
  recur = _recur_from(split)

  return _build(
    "lstm",
    H,
    init=init,
    initial_carry=initial_carry,
    project=project,
    recur=recur,
    options=LSTMOptions(forget_bias=forget_bias, gate_fn=gate_fn, activation=activation),
    split=split,
    gate_names=("i", "f", "o"),
    keep_write=_lstm_keep_write,
  )


def _gru_keep_write(gates: GRUGates) -> tuple[Array, Array]:
  return gates.z, 1 - gates.z


def _lstm_keep_write(gates: LSTMGates) -> tuple[Array, Array]:
  return gates.f, gates.i
