r"""The kit every built-in cell family is built from: the :class:`Cell` value, argument checks,
initialisers and the one builder.

A family file (``classic.py``, ``minimal.py``, ...) writes its cells' equations and
initialisation and hands them to :func:`build`, which makes ``step`` from ``project`` and
``recur`` (so the runner and a direct call of ``step`` cannot disagree) and checks a direct
call's arguments at trace time. Nothing here knows any family.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, PRNGKeyArray

from gatejax.protocol import RecurSplit, json_value

__all__ = ["Activation", "Bias", "Cell", "Chrono", "chrono"]

#: A gate or candidate function, elementwise on arrays (``jax.nn.sigmoid``, ``jnp.tanh``).
Activation: TypeAlias = Callable[[Array], Array]
Params: TypeAlias = Any
Carry: TypeAlias = Any


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


class Cell(NamedTuple):
  r"""A built-in recurrent cell: pure functions and the options that made them.

  Attributes:
    hidden_size: number of hidden units ``H`` (the size of ``y``).
    init: ``init(key, input_size, *, dtype=float32) -> params``.
    initial_carry: ``initial_carry(batch_shape=(), dtype=float32) -> carry`` (zeros).
    step: ``step(params, carry, x) -> (carry, y)``; ``x`` has shape
      ``(*batch, input_size)``, ``y`` has shape ``(*batch, H)``.
    project: ``project(params, x) -> px``, the input half of the step, valid for any
      leading axes (a whole sequence at once).
    recur: ``recur(params, carry, px) -> (carry, y, gates)``, the recurrent half.
    kind: the factory's name (``"gru"``, ``"lstm"``, ...).
    options: the factory's options, a ``NamedTuple``.
    split: ``recur`` as a :class:`~gatejax.protocol.RecurSplit`, or ``None`` where the
      recurrence has no single recurrent matmul.
    gate_names: the fields of ``recur``'s gates that are gates (candidates are not).
    keep_write: ``keep_write(gates) -> (keep, write)``, or ``None``.
    affine: for a cell affine in its carry, ``(params, xs) -> gj.Affine(a, b, form)``
      (:mod:`gatejax.protocol`), else ``None``.
    read: ``read(params, carry, x) -> y`` for a cell whose output is not a leaf of its
      carry, else ``None``.
    chunkwise: ``chunkwise(params, xs, carry, valid, chunk_size) -> (carry, ys)``, the
      cell's whole-sequence chunk form (``impl="chunkwise"``), else ``None``.
    init_only: the options that only shape ``init`` (a checkpoint may resume with others).
    title: how tables and sentences print the cell's family (``"minGRU"``, ``"RG-LRU"``).

  Every cell is also a cell in the sense of :mod:`gatejax.protocol`: the runners use
  ``hidden_size``, ``init``, ``initial_carry`` and ``step``, and the other members only as
  optional capabilities (a ``None`` member is absent).
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
  affine: Callable[[Params, Array], Any] | None = None
  read: Callable[[Params, Carry, Array], Array] | None = None
  chunkwise: Callable[..., tuple[Carry, Array]] | None = None
  init_only: tuple[str, ...] = ()
  title: str = ""

  @property
  def name(self) -> str:
    """A short name for messages, e.g. ``"gj.gru(8)"``."""
    return f"gj.{self.kind}({self.hidden_size})"

  def config(self) -> dict[str, Any]:
    """The factory and options that made the cell, as JSON (chrono as ``{"chrono": T}``)."""
    options = {
      k: {"chrono": v.max_timescale} if isinstance(v, Chrono) else json_value(v)
      for k, v in self.options._asdict().items()
    }
    return {"kind": self.kind, "hidden_size": self.hidden_size, **options}


# The public values are documented, pickled and shown as gatejax.cells' own.
for _public in (Chrono, chrono, Cell):
  _public.__module__ = "gatejax.cells"


# ---------------------------------------------------------------------------
# Argument checks of the factories
# ---------------------------------------------------------------------------


def check_positive_int(name: str, value: Any) -> None:
  """``value`` is an int >= 1 (not a bool): a ``TypeError``/``ValueError`` naming ``name``."""
  if not isinstance(value, int) or isinstance(value, bool):
    raise TypeError(f"{name} must be an int, got {type(value).__name__}")
  if value < 1:
    raise ValueError(f"{name} must be >= 1, got {value}")


def check_hidden_size(hidden_size: int) -> None:
  check_positive_int("hidden_size", hidden_size)


def check_input_size(input_size: int) -> None:
  check_positive_int("input_size", input_size)


def check_bias(name: str, bias: Bias) -> None:
  if isinstance(bias, Chrono):
    return
  if not isinstance(bias, int | float) or isinstance(bias, bool):
    raise TypeError(f"{name} must be a float or gj.chrono(max_timescale), got {bias!r}")


def check_callable(name: str, fn: Any) -> None:
  if not callable(fn):
    raise TypeError(f"{name} must be callable, got {fn!r}")


def check_number(
  name: str, value: Any, *, low: float | None = None, high: float | None = None
) -> float:
  """``value`` is a real number in ``[low, high]``: a ``TypeError``/``ValueError`` naming ``name``."""
  if not isinstance(value, int | float) or isinstance(value, bool):
    raise TypeError(f"{name} must be a number, got {type(value).__name__}")
  if (low is not None and not value >= low) or (high is not None and not value <= high):
    raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
  return float(value)


def check_heads(hidden_size: int, num_heads: int, name: str = "num_heads") -> int:
  """``num_heads`` divides ``hidden_size``; returns the head size."""
  check_positive_int(name, num_heads)
  if hidden_size % num_heads:
    raise ValueError(f"{name}={num_heads} must divide hidden_size={hidden_size}")
  return hidden_size // num_heads


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def draw_dtype(dtype: DTypeLike) -> Any:
  """The dtype to draw random weights in: float32 for half precision (no QR kernels there),
  rounded to ``dtype`` afterwards, which is also the most accurate half-precision init."""
  return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


def lecun_normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
  """LeCun normal (variance ``1 / shape[0]``), drawn in at least float32."""
  return jax.nn.initializers.lecun_normal()(key, shape, draw_dtype(dtype)).astype(dtype)


def weights(
  key: PRNGKeyArray, input_size: int, hidden_size: int, gates: int, dtype: DTypeLike
) -> tuple[Array, Array]:
  """LeCun-normal input matrix and per-gate orthogonal recurrent blocks."""
  k_x, k_h = jax.random.split(key)
  draw = draw_dtype(dtype)
  w_x = jax.nn.initializers.lecun_normal()(k_x, (input_size, gates * hidden_size), draw)
  orthogonal = jax.nn.initializers.orthogonal()
  blocks = [orthogonal(k, (hidden_size, hidden_size), draw) for k in jax.random.split(k_h, gates)]
  return w_x.astype(dtype), jnp.concatenate(blocks, axis=-1).astype(dtype)


def bias_values(key: PRNGKeyArray, bias: Bias, hidden_size: int, dtype: DTypeLike) -> Array:
  """The initial value of a gate bias: a constant or a chrono draw, shape ``(H,)``."""
  if isinstance(bias, Chrono):
    u = jax.random.uniform(key, (hidden_size,), minval=1.0, maxval=bias.max_timescale - 1.0)
    return jnp.log(u).astype(dtype)
  return jnp.full((hidden_size,), bias, dtype)


# ---------------------------------------------------------------------------
# Pieces of steps
# ---------------------------------------------------------------------------


def add_bias(a: Array, b: Array) -> Array:
  """``a + b`` with ``b`` broadcast explicitly over ``a``'s leading axes.

  Explicit so that the library runs under ``jax_numpy_rank_promotion="raise"``.
  """
  return a + jnp.reshape(b, (1,) * (a.ndim - b.ndim) + b.shape)


def split(a: Array, parts: int) -> list[Array]:
  """``a`` cut into ``parts`` equal blocks along its last axis (the fused gate layout)."""
  return jnp.split(a, parts, axis=-1)


def zeros_carry(hidden_size: int) -> Callable[..., Array]:
  """``initial_carry`` of a cell whose carry is one ``(*batch, hidden_size)`` array."""

  def initial_carry(batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32) -> Array:
    return jnp.zeros((*tuple(batch_shape), hidden_size), dtype)

  return initial_carry


def matmul_w_h(params: Params, h: Array) -> Array:
  return h @ params.w_h


def identity(carry: Array) -> Array:
  return carry


# ---------------------------------------------------------------------------
# Building a Cell
# ---------------------------------------------------------------------------


def memoized(factory: Callable[..., Cell]) -> Callable[..., Cell]:
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


@functools.lru_cache(maxsize=512)
def _expected_carry(initial_carry: Callable, batch_shape: tuple[int, ...]) -> Any:
  return jax.eval_shape(lambda: initial_carry(batch_shape))


def _check_step_arguments(
  name: str, init: Callable, initial_carry: Callable, params: Params, carry: Carry, x: Any
) -> None:
  from gatejax import _validate

  shape = tuple(jnp.shape(x))
  if not shape:
    raise ValueError(f"x must have shape (*batch, input_size), got a scalar for {name}")
  what = f"{name} reading x of {shape[-1]} features"
  _validate.tree(_expected_params(init, shape[-1]), params, name="params", what=what)
  expected = _expected_carry(initial_carry, shape[:-1])
  if jax.tree.structure(expected) != jax.tree.structure(carry):
    raise TypeError(
      f"carry must have the structure {jax.tree.structure(expected)} of {name}'s initial_carry, "
      f"got {jax.tree.structure(carry)}"
    )
  for want, leaf in zip(jax.tree.leaves(expected), jax.tree.leaves(carry), strict=True):
    if tuple(jnp.shape(leaf)) != want.shape:
      raise ValueError(
        f"carry must have shape {want.shape} per leaf for {name} reading x of batch shape "
        f"{shape[:-1]} (as initial_carry{shape[:-1]!r} gives), got {tuple(jnp.shape(leaf))}"
      )


def _make_step(
  kind: str,
  hidden_size: int,
  init: Callable,
  initial_carry: Callable,
  project: Callable,
  recur: Callable,
) -> Callable:
  """``step = recur ∘ project``, checking its arguments at trace time (no broadcasting).

  The runners call ``project`` and ``recur`` themselves and check once per sequence; a
  direct call of ``step`` gets the same checks, so a carry of another batch shape or
  width, or a bias of shape ``(1,)``, is an error instead of a silent broadcast.
  """
  name = f"gj.{kind}({hidden_size})"

  def step(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    _check_step_arguments(name, init, initial_carry, params, carry, x)
    with jax.named_scope(f"gatejax.{kind}"):
      carry, y, _ = recur(params, carry, project(params, x))
    return carry, y

  return step


def build(
  kind: str,
  hidden_size: int,
  *,
  init: Callable[..., Params],
  project: Callable,
  recur: Callable,
  options: Any,
  title: str,
  initial_carry: Callable[..., Carry] | None = None,
  **extra: Any,
) -> Cell:
  """A built-in :class:`Cell`: ``step`` made from ``project`` and ``recur`` (checked), and a
  zero ``(*batch, hidden_size)`` carry unless another ``initial_carry`` is given; ``extra``
  are the optional members (``split``, ``gate_names``, ``keep_write``, ``affine``, ``read``,
  ``chunkwise``, ``init_only``)."""
  initial_carry = initial_carry or zeros_carry(hidden_size)
  return Cell(
    hidden_size=hidden_size,
    init=init,
    initial_carry=initial_carry,
    step=_make_step(kind, hidden_size, init, initial_carry, project, recur),
    project=project,
    recur=recur,
    kind=kind,
    options=options,
    title=title,
    **extra,
  )
