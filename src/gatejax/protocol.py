r"""The cell protocol: what gatejax asks of a cell, and what it uses when a cell offers more.

A cell is any hashable value with four members (SPEC §3b)::

  cell.hidden_size                                            # int: the size of y
  params = cell.init(key, input_size, *, dtype=jnp.float32)   # any pytree of arrays
  carry = cell.initial_carry(batch_shape=(), dtype=jnp.float32)  # any pytree, leaves (*batch, ...)
  carry, y = cell.step(params, carry, x)       # x: (*batch, input) -> y: (*batch, hidden_size)

A frozen dataclass, a ``NamedTuple`` or a small class will do; the library never asks
which type it is. Hashable, because jitted runners take the cell as a static argument:
equal cells share one compilation. Every runner (:func:`gatejax.scan`, stacks, the
analysis, training, the NNX layer, checkpoints) reaches a cell only through this module.

Example: a forget-gate-only LSTM (JANET, van der Westhuizen & Lasenby 2018), written
outside the library, runs wherever a built-in cell runs:

  >>> import dataclasses, jax, jax.numpy as jnp, gatejax as gj
  >>> @dataclasses.dataclass(frozen=True)
  ... class Janet:
  ...   hidden_size: int
  ...   def init(self, key, input_size, *, dtype=jnp.float32):
  ...     k_x, k_h = jax.random.split(key)
  ...     H = self.hidden_size
  ...     return {"w_x": jax.random.normal(k_x, (input_size, 2 * H), dtype) / input_size**0.5,
  ...             "w_h": jax.random.normal(k_h, (H, 2 * H), dtype) / H**0.5,
  ...             "b": jnp.zeros(2 * H, dtype).at[:H].set(1.0)}
  ...   def initial_carry(self, batch_shape=(), dtype=jnp.float32):
  ...     return jnp.zeros((*batch_shape, self.hidden_size), dtype)
  ...   def step(self, params, h, x):
  ...     a = x @ params["w_x"] + h @ params["w_h"]
  ...     a_f, a_c = jnp.split(a + jnp.broadcast_to(params["b"], a.shape), 2, axis=-1)
  ...     f = jax.nn.sigmoid(a_f)
  ...     h = f * h + (1 - f) * jnp.tanh(a_c)
  ...     return h, h
  >>> cell = Janet(8)
  >>> params = cell.init(jax.random.key(0), input_size=3)
  >>> carry, ys = gj.scan(cell, params, jnp.ones((20, 4, 3)), lengths=jnp.array([20, 5, 9, 1]))
  >>> ys.shape
  (20, 4, 8)

Optional capabilities, each found by presence (``getattr``), with the plain path as the
fallback, so a four-member cell and a built-in cell go through the same code. Each must
agree with ``step``; :func:`check` compares them on a small input (run it in your cell's
tests):

* ``project(params, x) -> px`` and ``recur(params, carry, px) -> (carry, y, gates)``: the
  step cut into its input half (no time dependence, so a runner applies it to a whole
  sequence at once) and its recurrent half, which also returns the step's gate
  activations (any pytree; ``()`` for none). ``step`` must equal ``recur ∘ project``
  without the gates. A cell with ``recur`` and no ``project`` reads ``x`` itself.
* ``gate_names``: which fields of ``gates`` are gates (valued in ``[0, 1]`` for a sigmoid
  ``gate_fn``), for :func:`gatejax.analysis.gate_statistics`; default: every field.
* ``keep_write(gates) -> (keep, write)``: the gate that keeps the carry and the one that
  writes the candidate (``f`` and ``i`` for the LSTM, ``z`` and ``1 − z`` for the GRU).
* ``split``: a :class:`RecurSplit` of ``recur`` at its recurrent matmul, for the
  hand-written VJP of the fused runner and bfloat16 matmuls.
* ``read(params, carry, x) -> y``: the step's output from its new carry and its input, for
  a cell whose output is not (a leaf of) its carry (``y = C h + D x``, ``y = qᵀ S``);
  ``step`` must return ``(carry_t, read(params, carry_t, x_t))``. Without it gatejax still
  finds the output when ``step`` returns one leaf of its new carry as ``y``
  (``return h, h``).
* ``affine(params, xs) -> Affine(a, b, form)``: for a cell whose step is affine in its
  carry, :math:`c_t = a_t \cdot c_{t-1} + b_t` for the whole sequence at once, time first
  (:class:`gatejax.affine.Affine`: ``"diagonal"`` leaf by leaf for any pytree carry, real or
  complex, or ``"matrix"`` acting on a key axis). The runner then evaluates the sequence
  with ``jax.lax.associative_scan`` (``impl="associative"``), :func:`gatejax.parallel_scan`
  solves it in one exact sweep, and the analysis reads the step Jacobian from ``a_t``.
  Padding (``lengths``) is the identity element, applied by the runners, never by the cell.
* ``chunkwise(params, xs, carry, valid, chunk_size) -> (carry, ys)``: for a cell with a
  matrix-valued state, its whole-sequence chunkwise form (matmuls within a chunk of
  ``chunk_size`` steps, the recurrence between chunks), equal to the step loop, used by
  ``impl="chunkwise"``. ``xs`` is ``(time, *batch, input)`` with the padding already zeroed;
  ``valid`` is ``None`` or ``(time, *batch)`` bool, and a step where it is False must leave the
  carry unchanged (its output is discarded); ``chunk_size=None`` means the cell's own default,
  and ``time`` need not be a multiple of it. The runner reverses time itself for
  ``reverse=True`` (the padding then comes first, where it holds the initial carry).
* ``init_only``: names in the cell's ``config()`` that only shape ``init`` (initial values
  written into the parameters, such as ``forget_bias``): a checkpoint may resume with other
  values of them.
* ``name``: a short string for messages (default: the type's name and hidden size).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core
from jax.typing import DTypeLike
from jaxtyping import Array, PRNGKeyArray

__all__ = [
  "Carry",
  "CellLike",
  "Params",
  "RecurSplit",
  "Recurrence",
  "affine_of",
  "check",
  "config",
  "describe",
  "gate_values",
  "init_only",
  "input_size_of",
  "is_cell",
  "keep_gate",
  "keep_write",
  "reader",
  "recurrence",
  "require",
]

#: A cell's parameters: whatever pytree of arrays its ``init`` returns (a name, not a type).
Params = Any
#: A cell's carry: whatever pytree its ``initial_carry`` returns, leaves ``(*batch, ...)``.
Carry = Any

MEMBERS = ("hidden_size", "init", "initial_carry", "step")


@runtime_checkable
class CellLike(Protocol):
  """The four members every cell has (SPEC §3b); see the module docstring."""

  hidden_size: int

  def init(self, key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = ...) -> Params: ...

  def initial_carry(self, batch_shape: tuple[int, ...] = ..., dtype: DTypeLike = ...) -> Carry: ...

  def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]: ...


def is_cell(value: Any) -> bool:
  """Whether ``value`` has the four members of a cell (it may still be a wrong one)."""
  return all(hasattr(value, m) for m in MEMBERS) and not isinstance(value, type)


def require(value: Any, name: str = "cell") -> None:
  """Raise a ``TypeError`` naming ``name`` unless ``value`` can be run as a cell."""
  if isinstance(value, type):
    raise TypeError(f"{name} must be a cell instance, got the class {value.__name__}")
  missing = [m for m in MEMBERS if not hasattr(value, m)]
  if missing:
    raise TypeError(
      f"{name} must be a cell: a value with hidden_size, init, initial_carry and step "
      f"(e.g. gj.gru(8)); got {type(value).__name__}, which has no {', '.join(missing)}"
    )
  size = value.hidden_size
  if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
    raise TypeError(f"{name}.hidden_size must be an int >= 1, got {size!r}")
  for member in MEMBERS[1:]:
    if not callable(getattr(value, member)):
      raise TypeError(f"{name}.{member} must be callable, got {getattr(value, member)!r:.60}")
  try:
    hash(value)
  except TypeError:
    raise TypeError(
      f"{name} must be hashable (a frozen dataclass, a NamedTuple, ...): jitted runners take "
      f"the cell as a static argument; {type(value).__name__} is not"
    ) from None


def json_value(value: Any) -> Any:
  """An option as JSON: numbers, strings and None as they are, a NamedTuple as a dict of its
  fields, a function by its name (``jax.nn.sigmoid`` -> ``"sigmoid"``), anything else by repr."""
  if isinstance(value, bool | int | float | str) or value is None:
    return value
  if isinstance(value, tuple) and hasattr(value, "_asdict"):
    return {k: json_value(v) for k, v in cast(Any, value)._asdict().items()}
  if isinstance(value, list | tuple):
    return [json_value(v) for v in value]
  return str(getattr(value, "__name__", None) or repr(value))


def config(cell: Any) -> dict[str, Any]:
  """A JSON description of ``cell``: what a checkpoint records and checks on restore.

  The cell's own ``config()`` where it has one (the built-in cells: their kind and
  options); else its type, its hidden size and its dataclass or NamedTuple fields, or,
  for a plain class, every public attribute the instance holds (``vars`` and
  ``__slots__``, names without a leading ``_``). A value without a stable description (an
  object whose repr is its address) is recorded by its type.

  Example:
    >>> import dataclasses, gatejax as gj
    >>> from gatejax.protocol import config
    >>> config(gj.lstm(8))
    {'kind': 'lstm', 'hidden_size': 8, 'forget_bias': 1.0, 'gate_fn': 'sigmoid', 'activation': 'tanh'}
  """
  value = cast(Any, cell)
  hidden_size = int(value.hidden_size)
  own: Any = getattr(value, "config", None)
  if callable(own):
    described = cast(dict[str, Any], own())
    return dict(described)
  if dataclasses.is_dataclass(value):
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
  elif hasattr(value, "_asdict"):
    fields = dict(value._asdict())
  else:
    # A plain class keeps its options as attributes: record them all, or a checkpoint of a
    # leak=0.1 run would resume into leak=0.9 without a word.
    names = [n for n in getattr(value, "__dict__", {}) if not n.startswith("_")]
    for klass in type(value).__mro__:
      slots = getattr(klass, "__slots__", ())
      for n in (slots,) if isinstance(slots, str) else slots:
        if not n.startswith("_") and n not in names and hasattr(value, n):
          names.append(n)
    fields = {n: getattr(value, n) for n in sorted(names) if n != "hidden_size"}

  def stable(v: Any) -> Any:
    # An address differs from process to process: it would make every resume a mismatch.
    described = json_value(v)
    if isinstance(described, str) and " at 0x" in described:
      return f"<{type(v).__qualname__}>"
    return described

  kind = type(value)
  return {
    "type": f"{kind.__module__}.{kind.__qualname__}",
    "hidden_size": hidden_size,
    **{k: stable(v) for k, v in fields.items()},
  }


def describe(cell: Any) -> str:
  """A short name of ``cell`` for messages: its ``name`` member, else type and hidden size."""
  name = getattr(cell, "name", None)
  if isinstance(name, str) and name:
    return name
  return f"{type(cell).__name__}(hidden_size={getattr(cell, 'hidden_size', '?')})"


# ---------------------------------------------------------------------------
# The recurrence a runner runs
# ---------------------------------------------------------------------------


class RecurSplit(NamedTuple):
  r"""``recur`` cut at its recurrent matmul, for runners that differentiate it by hand.

  ``recur(params, carry, px) == combine(carry, px, mix(params, hidden(carry)))``, and
  ``recur`` is built from these three (:meth:`recur`), so they cannot disagree. ``combine``
  reads no parameters: every parameter the recurrence uses goes through ``mix``, so the
  weight gradient of a whole sequence is one ``jax.vjp`` of ``mix`` with time as a batch
  axis (one large matmul, :math:`\partial W_h = \sum_t h_{t-1}^\top \delta_t`), as the
  fused runner does.

  Attributes:
    hidden: ``hidden(carry) -> h``, the part of the carry the recurrent matmul reads.
    mix: ``mix(params, h) -> hh``, the recurrent matmul (plus any bias inside it),
      ``(*batch, hidden) -> (*batch, G * hidden)``.
    combine: ``combine(carry, px, hh) -> (carry, y, gates)``, the elementwise rest.
  """

  hidden: Callable[[Carry], Array]
  mix: Callable[[Params, Array], Array]
  combine: Callable[[Carry, Array, Array], tuple[Carry, Array, Any]]

  def recur(self, params: Params, carry: Carry, px: Array) -> tuple[Carry, Array, Any]:
    """``combine(carry, px, mix(params, hidden(carry)))``: the ``recur`` this split cuts."""
    return self.combine(carry, px, self.mix(params, self.hidden(carry)))


class Recurrence(NamedTuple):
  """A cell's step as the runners use it: ``recur(params, carry, project(params, x))``.

  Attributes:
    project: the input half, applied to a whole sequence at once.
    recur: the recurrent half, ``(params, carry, px) -> (carry, y, gates)``.
    split: ``recur`` cut at its recurrent matmul, or ``None``.
  """

  project: Callable[[Params, Array], Array]
  recur: Callable[[Params, Carry, Array], tuple[Carry, Array, Any]]
  split: Any


def _read_input(params: Params, x: Array) -> Array:
  return x


@functools.lru_cache(maxsize=256)
def recurrence(cell: Any) -> Recurrence:
  """The cell's ``project``/``recur`` split where it has one; else ``step`` with no gates.

  Cached per cell (bounded), so that every runner sees the same functions.
  """
  recur = getattr(cell, "recur", None)
  if recur is None:
    step = cell.step

    def recur_from_step(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array, Any]:
      carry, y = step(params, carry, x)
      return carry, y, ()

    return Recurrence(_read_input, recur_from_step, None)
  project = getattr(cell, "project", None) or _read_input
  return Recurrence(project, recur, getattr(cell, "split", None))


def gate_values(cell: Any, gates: Any) -> dict[str, Array]:
  """name -> activation of every gate in ``gates`` (as ``recur`` returns them).

  The names are ``cell.gate_names`` where the cell has them (so candidates, which are not
  gates, can be left out), else every field of ``gates`` (a NamedTuple or a dict).
  """
  if isinstance(gates, dict):
    fields = {str(k): v for k, v in gates.items()}
  elif hasattr(gates, "_asdict"):
    fields = dict(gates._asdict())
  else:
    fields = {}
  names = getattr(cell, "gate_names", None)
  if names is None:
    return fields
  missing = [n for n in names if n not in fields]
  if missing:
    raise ValueError(
      f"{describe(cell)}.gate_names names {missing}, which its recur does not return "
      f"(it returns {sorted(fields)})"
    )
  return {n: fields[n] for n in names}


def keep_write(cell: Any, gates: Any) -> tuple[Array, Array] | None:
  """``(keep, write)`` gate activations where the cell says which they are, else ``None``."""
  fn = getattr(cell, "keep_write", None)
  return None if fn is None else fn(gates)


@functools.lru_cache(maxsize=256)
def keep_gate(cell: Any) -> str | None:
  """The name of the gate that ``keep_write`` returns as the keep gate, if it is one of them.

  Found by tracing one step (``z`` for the GRU, ``f`` for the LSTM); ``None`` for a cell
  without gates or whose keep gate is derived from them (``1 - z`` of minGRU).

  Example:
    >>> import gatejax as gj
    >>> from gatejax.protocol import keep_gate
    >>> keep_gate(gj.gru(4)), keep_gate(gj.lstm(4)), keep_gate(gj.rnn(4))
    ('z', 'f', None)
  """
  if getattr(cell, "keep_write", None) is None or getattr(cell, "recur", None) is None:
    return None
  found: list[str] = []

  def probe(params: Params, carry: Carry, x: Array) -> None:
    parts = recurrence(cell)
    _, _, gates = parts.recur(params, carry, parts.project(params, x))
    keep, _ = cell.keep_write(gates)
    found.extend(n for n, a in gate_values(cell, gates).items() if a is keep)

  params = expected_params(cell, 1)
  carry = jax.eval_shape(lambda: cell.initial_carry((), params_dtype(params)))
  jax.eval_shape(probe, params, carry, jax.ShapeDtypeStruct((1,), params_dtype(params)))
  return found[0] if found else None


def params_dtype(params: Params) -> Any:
  """The floating dtype of the parameters (float32 when they have none)."""
  leaves = [a.dtype for a in jax.tree.leaves(params) if np.issubdtype(a.dtype, np.floating)]
  return leaves[0] if leaves else np.dtype("float32")


# ---------------------------------------------------------------------------
# Facts derived from the cell itself
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def expected_params(cell: Any, input_size: int) -> Any:
  """Shapes and dtypes of ``cell.init(key, input_size)`` (traced, never computed); cached."""
  return jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))


@functools.lru_cache(maxsize=256)
def _input_axis(cell: Any) -> tuple[int, int, int, int] | None:
  """Where the input size shows in the parameters: ``(leaf, axis, size at 1, per input)``.

  Found by tracing ``init`` at two input sizes; ``None`` if no shape depends on it.
  """
  one, two = (jax.tree.leaves(expected_params(cell, n)) for n in (1, 2))
  for k, (a, b) in enumerate(zip(one, two, strict=True)):
    if len(a.shape) != len(b.shape):
      return None
    for axis, (m, n) in enumerate(zip(a.shape, b.shape, strict=True)):
      if m != n:
        return k, axis, m, n - m
  return None


def input_size_of(cell: Any, params: Params) -> int | None:
  """The input size that ``params`` read, or ``None`` if it cannot be told from their shapes.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax.protocol import input_size_of
    >>> input_size_of(gj.lstm(4), gj.lstm(4).init(jax.random.key(0), 7))
    7
  """
  where = _input_axis(cell)
  leaves = jax.tree.leaves(params)
  if where is None or where[0] >= len(leaves):
    return None
  k, axis, at_one, per_input = where
  shape = np.shape(leaves[k])
  if axis >= len(shape):
    return None
  size, rest = divmod(shape[axis] - at_one, per_input)
  return size + 1 if rest == 0 and size >= 0 else None


def affine_of(cell: Any) -> Callable[[Params, Array], Any] | None:
  """The cell's ``affine`` member (its step is affine in the carry), or ``None``."""
  return getattr(cell, "affine", None)


def init_only(cell: Any) -> frozenset[str]:
  """Names in ``config(cell)`` that only shape ``init`` (initial values written into the
  parameters, e.g. ``forget_bias``): a checkpoint may resume with other values of these.

  A cell declares them as an optional ``init_only`` member (a tuple of names); default none.
  """
  return frozenset(getattr(cell, "init_only", None) or ())


def reader(
  cell: Any, params: Params, carry: Carry, x: Any
) -> Callable[[Params, Carry, Array], Array] | None:
  """``(params, new_carry, x) -> y`` where the step's output is read from its new carry.

  ``cell.read`` where the cell has it; else, when ``step`` returns one leaf of its new
  carry as ``y`` (found by tracing ``step`` at these arguments' shapes), the function that
  takes that leaf; else ``None`` (the output is computed beside the carry, not read from it).
  """
  read = getattr(cell, "read", None)
  if read is not None:
    return read
  closed = jax.make_jaxpr(cell.step)(params, carry, x)
  outs = closed.jaxpr.outvars
  count = len(jax.tree.leaves(carry))
  if len(outs) != count + 1 or isinstance(outs[count], jax_core.Literal):
    return None
  for k, var in enumerate(outs[:count]):
    if var is outs[count]:
      return functools.partial(_leaf, k)
  return None


def _leaf(k: int, params: Params, carry: Carry, x: Array) -> Array:
  return jax.tree.leaves(carry)[k]


# ---------------------------------------------------------------------------
# Optional members against the step
# ---------------------------------------------------------------------------


def _differences(got: Any, want: Any, tol: float) -> float | None:
  """The largest difference scaled by ``max(1, |want|)``, if it exceeds ``tol``; else ``None``."""
  worst = 0.0
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    g, w = np.asarray(g), np.asarray(w)
    if g.shape != w.shape:
      return float("inf")
    both_nan = np.isnan(g) & np.isnan(w)
    scale = np.maximum(1.0, np.abs(w))
    err = np.where(both_nan, 0.0, np.abs(g - w) / scale)
    if err.size:
      worst = max(worst, float(np.max(np.where(np.isnan(err), np.inf, err))))
  return worst if worst > tol else None


def check(
  cell: Any, params: Params, xs: Array, *, carry: Carry | None = None, tol: float | None = None
) -> None:
  r"""Check that every optional member of ``cell`` agrees with its ``step`` on ``xs``.

  A cell's optional members (``project``/``recur``, ``split``, ``read``, ``affine``,
  ``gate_names``, ``keep_write``) are fast paths and facts that the runners trust: a
  ``recur`` that differs from ``step`` makes :func:`gatejax.scan` follow ``recur`` while
  :func:`gatejax.parallel_scan` follows ``step``, and a wrong ``affine`` makes
  ``impl="associative"`` wrong. This runs ``step`` over ``xs`` (a small time-major input;
  a Python loop, not compiled) from ``carry`` (default ``cell.initial_carry``) and compares
  each member at every step.

  Args:
    cell: any cell (SPEC §3b).
    params: its parameters.
    xs: ``(time, *batch, input_size)``, a few steps.
    carry: the initial carry; default ``cell.initial_carry(batch, dtype)``.
    tol: the largest allowed difference, relative to ``max(1, |value|)``; default
      ``1000 × eps`` of the step's dtype (1.2e-4 in float32, 2.2e-13 in float64).

  Raises:
    ValueError: a member disagrees with ``step``; the message names the member, the step
      and the difference.
    TypeError: a member returns the wrong type or structure.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.min_gru(4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> check(cell, params, jax.random.normal(jax.random.key(1), (5, 2, 3)))   # silent: all agree
    >>> bad = cell._replace(read=lambda p, c, x: 2 * c)
    >>> check(bad, params, jnp.ones((5, 2, 3)))
    Traceback (most recent call last):
    ValueError: gj.min_gru(4).read disagrees with its step at step 0: ...
  """
  from gatejax import affine as affine_lib

  require(cell)
  xs = jnp.asarray(xs)
  if xs.ndim < 2:
    raise ValueError(f"xs must have shape (time, *batch, input_size), got {xs.shape}")
  dtype = jnp.result_type(xs, *jax.tree.leaves(params))
  if carry is None:
    carry = cell.initial_carry(xs.shape[1:-1], dtype)
  if tol is None:
    tol = 1000 * float(jnp.finfo(dtype).eps)
  who = describe(cell)

  def compare(member: str, t: int, got: Any, want: Any) -> None:
    if jax.tree.structure(got) != jax.tree.structure(want):
      raise TypeError(
        f"{who}.{member} returns {jax.tree.structure(got)} where step gives "
        f"{jax.tree.structure(want)} (step {t})"
      )
    err = _differences(got, want, tol)
    if err is not None:
      raise ValueError(
        f"{who}.{member} disagrees with its step at step {t}: largest difference {err:.3g} "
        f"(relative to max(1, |value|); tolerance {tol:.3g})"
      )

  recur = getattr(cell, "recur", None)
  project = getattr(cell, "project", None) or _read_input
  split = getattr(cell, "split", None)
  read = getattr(cell, "read", None)
  befores, afters = [], []
  c = carry
  for t in range(xs.shape[0]):
    x = xs[t]
    new, y = cell.step(params, c, x)
    befores.append(c)
    afters.append(new)
    if recur is not None:
      px = project(params, x)
      r_new, r_y, gates = recur(params, c, px)
      compare("recur", t, (r_new, r_y), (new, y))
      if split is not None:
        compare("split", t, split.recur(params, c, px), (r_new, r_y, gates))
      gate_values(cell, gates)
      kw = keep_write(cell, gates)
      if kw is not None and (not isinstance(kw, tuple) or len(kw) != 2):
        raise TypeError(f"{who}.keep_write must return (keep, write), got {type(kw).__name__}")
    if read is not None:
      compare("read", t, read(params, new, x), y)
    c = new
  affine = affine_of(cell)
  if affine is not None and xs.shape[0]:
    aff = affine_lib.check(affine(params, xs), carry, xs.shape[0], f"{who}.affine")
    for t in range(xs.shape[0]):
      at_t = functools.partial(_at, t)
      step_t = affine_lib.Affine(
        a=jax.tree.map(at_t, aff.a), b=jax.tree.map(at_t, aff.b), form=aff.form
      )
      compare("affine", t, affine_lib.apply(step_t, befores[t]), afters[t])


def _at(t: int, a: Array) -> Array:
  return a[t]
