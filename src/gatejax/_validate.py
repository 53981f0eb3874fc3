"""Argument checks shared by the runners: clear errors at trace time, naming the argument.

What a cell's parameters and carry must look like is derived from the cell itself
(``jax.eval_shape`` of its ``init``, ``initial_carry`` and ``step``), never from a table
of cell kinds, so a user's cell is checked exactly as a built-in one.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gatejax import protocol


def cell(value: Any, name: str = "cell") -> None:
  protocol.require(value, name)


def sequence(xs: Any, name: str = "xs") -> jax.Array:
  """``xs`` as an array of shape ``(time, *batch, input)`` with a floating dtype."""
  if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
    xs = jnp.asarray(xs)
  if not jnp.issubdtype(xs.dtype, jnp.floating):
    raise TypeError(f"{name} must have a floating dtype, got {xs.dtype}")
  if xs.ndim < 2:
    raise ValueError(
      f"{name} must have shape (time, *batch, input_size), rank >= 2, got shape {tuple(xs.shape)}"
    )
  return xs


def _type_name(tree: Any) -> str:
  return type(tree).__name__


class Mismatch(NamedTuple):
  """One leaf where a pytree differs from what it must be.

  Attributes:
    path: the leaf's key path (``jax.tree_util`` keys), from ``expected`` where it has it.
    expected: the leaf's abstract array, or ``None`` for a leaf that should not be there.
    found: the found leaf's abstract array, or ``None`` for a missing leaf.
  """

  path: tuple[Any, ...]
  expected: jax.ShapeDtypeStruct | None
  found: jax.ShapeDtypeStruct | None


def _key_name(key: Any) -> Any:
  """A key path entry as a plain name: a field name, a dict key or an index."""
  for attribute in ("name", "key", "idx"):
    if hasattr(key, attribute):
      return getattr(key, attribute)
  return key


def dotted(path: tuple[Any, ...]) -> str:
  """A key path as ``opt_state.1.0.mu.cell.w_x``, the same for a NamedTuple and its dict."""
  return ".".join(str(_key_name(k)) for k in path)


def mismatches(expected: Any, value: Any, *, exact_dtypes: bool = False) -> list[Mismatch]:
  """Every leaf where ``value`` differs from ``expected`` in presence, shape or dtype.

  The one comparison of a pytree against what it must be. Leaves are matched by the
  names on their paths (field names, dict keys, indices), not by the container types, so
  the nested dicts and lists orbax stores for a ``TrainState`` match the state itself.
  Any leaf with ``shape`` and ``dtype`` is compared (arrays, ``jax.ShapeDtypeStruct``).
  A floating leaf may have any floating dtype unless ``exact_dtypes``; another leaf must
  have the expected dtype.

  Returns:
    The differences in the order of ``expected``'s leaves, then the unexpected leaves.
  """

  def flat(tree: Any) -> dict[tuple[Any, ...], tuple[tuple[Any, ...], jax.ShapeDtypeStruct]]:
    pairs = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
      tuple(_key_name(k) for k in path): (
        path,
        jax.ShapeDtypeStruct(tuple(np.shape(leaf)), jnp.result_type(leaf)),
      )
      for path, leaf in pairs
    }

  want, have = flat(expected), flat(value)
  out = []
  for names, (path, e) in want.items():
    if names not in have:
      out.append(Mismatch(path, e, None))
      continue
    f = have[names][1]
    if exact_dtypes or not jnp.issubdtype(e.dtype, jnp.floating):
      dtype_differs = f.dtype != e.dtype
    else:
      dtype_differs = not jnp.issubdtype(f.dtype, jnp.floating)
    if dtype_differs or f.shape != e.shape:
      out.append(Mismatch(path, e, f))
  out += [Mismatch(path, None, f) for names, (path, f) in have.items() if names not in want]
  return out


def tree(expected: Any, value: Any, *, name: str, what: str) -> None:
  """``value`` has the pytree structure and leaf shapes of ``expected`` (abstract arrays).

  The parameters against ``cell.init``, the NNX layer's arrays against theirs; built on
  :func:`mismatches`, as the checkpoints' check is. A floating leaf must be floating (any
  precision); another leaf must have the expected dtype.

  Raises:
    TypeError: another structure (another cell, another number of layers) or dtype.
    ValueError: a leaf of another shape, named by its path (``params.w_x``).
  """
  want, got = jax.tree.structure(expected), jax.tree.structure(value)
  if want != got:
    if type(expected) is not type(value) and hasattr(expected, "_fields"):
      raise TypeError(f"{name} must be {_type_name(expected)} for {what}, got {_type_name(value)}")
    raise TypeError(f"{name} do not fit {what}: expected the pytree {want}, got {got}")
  for m in mismatches(expected, value):
    e, f = m.expected, m.found
    assert e is not None and f is not None  # the structures are equal
    where = name + jax.tree_util.keystr(m.path)
    if jnp.issubdtype(e.dtype, jnp.floating) and not jnp.issubdtype(f.dtype, jnp.floating):
      raise TypeError(f"{where} must have a floating dtype, got {f.dtype}")
    if not jnp.issubdtype(e.dtype, jnp.floating) and f.dtype != e.dtype:
      raise TypeError(f"{where} must have dtype {e.dtype}, got {f.dtype}")
    raise ValueError(f"{name} do not fit {what}: {where} has shape {f.shape}, expected {e.shape}")


def params(c: Any, p: Any, *, input_size: int, name: str = "params") -> None:
  """``p`` has the structure and shapes of ``c.init(key, input_size)``."""
  have = protocol.input_size_of(c, p)
  if have is not None and have != input_size:
    expected = protocol.expected_params(c, have)
    if jax.tree.structure(expected) == jax.tree.structure(p):
      raise ValueError(
        f"xs has input size {input_size} (its last axis) but {name} expect input_size {have}"
      )
  expected = protocol.expected_params(c, input_size)
  tree(expected, p, name=name, what=f"{protocol.describe(c)} reading {input_size} inputs")


def carry(c: Any, value: Any, batch_shape: tuple[int, ...], dtype: Any) -> None:
  """``value`` has the structure, shapes and dtype of ``c.initial_carry(batch_shape, dtype)``."""
  expected = jax.eval_shape(lambda: c.initial_carry(batch_shape, dtype))
  want, got = jax.tree.structure(expected), jax.tree.structure(value)
  if want != got:
    raise TypeError(
      f"carry must have the structure {want} of {protocol.describe(c)}.initial_carry, got {got}"
    )
  for e, v in zip(jax.tree.leaves(expected), jax.tree.leaves(value), strict=True):
    if tuple(np.shape(v)) != e.shape:
      raise ValueError(
        f"carry must have shape {e.shape} (*batch, ...) per leaf, as "
        f"{protocol.describe(c)}.initial_carry{tuple(batch_shape)!r} gives, got {tuple(np.shape(v))}"
      )
    if jnp.result_type(v) != e.dtype:
      raise TypeError(
        f"carry must have dtype {e.dtype} (the result type of xs and params), got {jnp.result_type(v)}"
      )


def _abstract(tree: Any) -> Any:
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), tree)


def _signature(tree: Any) -> tuple[Any, ...]:
  leaves, treedef = jax.tree.flatten(tree)
  return (treedef, *((tuple(np.shape(a)), jnp.result_type(a)) for a in leaves))


def step(c: Any, p: Any, carry_value: Any, x: Any, batch_shape: tuple[int, ...]) -> None:
  """``c.step`` maps the carry to a carry of the same structure, shapes and dtypes, and a ``y``
  of shape ``(*batch, hidden_size)``; traced once per cell and shapes (cached)."""
  abstract = tuple(_abstract(t) for t in (p, carry_value, x))
  key = (c, tuple(batch_shape), *(_signature(t) for t in abstract))
  if key in _CHECKED:
    _CHECKED.move_to_end(key)
    return
  _check_step(c, abstract, tuple(batch_shape))
  _CHECKED[key] = None
  if len(_CHECKED) > 512:  # bounded: a long session sweeping shapes must not grow it forever
    _CHECKED.popitem(last=False)


# The (cell, shapes) whose step has been checked, least recently used first.
_CHECKED: collections.OrderedDict[Any, None] = collections.OrderedDict()


def _check_step(c: Any, abstract: Any, batch_shape: tuple[int, ...]) -> None:
  p, carry_in, x = abstract
  leaves_in = jax.tree.leaves(carry_in)
  for leaf in leaves_in:
    if tuple(leaf.shape[: len(batch_shape)]) != batch_shape:
      raise ValueError(
        f"{protocol.describe(c)}.initial_carry must give leaves of shape (*batch, ...) with "
        f"batch {batch_shape}, got a leaf of shape {tuple(leaf.shape)}"
      )
  try:
    out = jax.eval_shape(c.step, p, carry_in, x)
  except Exception as e:
    e.add_note(f"(while tracing {protocol.describe(c)}.step with the carry of its initial_carry)")
    raise
  who = f"{protocol.describe(c)}.step"
  if not isinstance(out, tuple) or len(out) != 2:
    raise TypeError(f"{who} must return (carry, y), got {type(out).__name__}")
  carry_out, y = out
  want, got = jax.tree.structure(carry_in), jax.tree.structure(carry_out)
  if want != got:
    raise TypeError(
      f"{who} returns a carry of structure {got}, but its initial_carry has structure {want}"
    )
  for a, b in zip(leaves_in, jax.tree.leaves(carry_out), strict=True):
    if a.shape != b.shape or a.dtype != b.dtype:
      raise TypeError(
        f"{who} returns a carry leaf {b.dtype.name}{list(b.shape)} for its initial_carry's "
        f"{a.dtype.name}{list(a.shape)}: a step must keep the carry's shapes and dtypes"
      )
  if not hasattr(y, "shape") or tuple(y.shape) != (*batch_shape, c.hidden_size):
    raise ValueError(
      f"{who} must return y of shape (*batch, hidden_size) = {(*batch_shape, c.hidden_size)}, "
      f"got {getattr(y, 'shape', type(y).__name__)}"
    )


def lengths(value: Any, batch_shape: tuple[int, ...], time: int) -> jax.Array:
  """Integer lengths of shape ``batch_shape``, each in ``[0, time]`` when concrete."""
  if not hasattr(value, "dtype"):
    value = jnp.asarray(value)
  if not jnp.issubdtype(value.dtype, jnp.integer):
    raise TypeError(f"lengths must have an integer dtype, got {value.dtype}")
  if tuple(value.shape) != tuple(batch_shape):
    raise ValueError(
      f"lengths must have the batch shape of xs {tuple(batch_shape)}, got {tuple(value.shape)}"
    )
  try:
    concrete = np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    concrete = None  # traced: the values are not known until run time
  if concrete is not None and concrete.size:
    low, high = int(concrete.min()), int(concrete.max())
    if low < 0 or high > time:
      raise ValueError(f"lengths must lie in [0, {time}] (time steps of xs), got [{low}, {high}]")
  return jnp.asarray(value)


def unroll(value: Any) -> None:
  if isinstance(value, bool):
    return
  if not isinstance(value, int) or value < 1:
    raise ValueError(f"unroll must be an int >= 1 or a bool, got {value!r}")


def float_carry(carry: Any, who: str) -> None:
  """Refuse a carry leaf that is not floating point (real or complex), naming it.

  An integer leaf (a step counter, say) has no derivative, and ``who`` differentiates the
  step with respect to the carry (Newton's linearisation, the tangent frames of the Lyapunov
  exponents, the analysis' sweeps). Treating the leaf as constant would be wrong: a counter
  changes at every step.
  """
  for path, leaf in jax.tree_util.tree_flatten_with_path(carry)[0]:
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
      name = dotted(path) or "(the whole carry)"
      raise TypeError(
        f"carry leaf {name} has dtype {leaf.dtype}: {who} differentiates the step with respect "
        "to the carry, and an integer leaf has no derivative; hold it as a float (a step "
        "counter is exact in float32 up to 2**24), or run gj.scan"
      )
