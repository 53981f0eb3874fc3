"""Argument checks shared by the runners: clear errors at trace time, naming the argument."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gatejax.cells import Cell, GRUParams, LSTMParams, RNNParams

_PARAMS_TYPES = {"rnn": RNNParams, "gru": GRUParams, "lstm": LSTMParams}
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def cell(value: Any) -> None:
  if not isinstance(value, Cell):
    raise TypeError(
      f"cell must be a gj.Cell (from gj.rnn, gj.gru, gj.lstm), got {type(value).__name__}"
    )


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


def params(c: Cell, p: Any, *, input_size: int, name: str = "params") -> None:
  """``p`` has the cell's parameter type and shapes, and reads ``input_size`` features."""
  expected = _PARAMS_TYPES[c.kind]
  if not isinstance(p, expected):
    raise TypeError(
      f"{name} must be {expected.__name__} for a {c.kind} cell, got {type(p).__name__}"
    )
  H, G = c.hidden_size, _GATES[c.kind]
  w_x, w_h = np.shape(p.w_x), np.shape(p.w_h)
  if w_h != (H, G * H) or len(w_x) != 2 or w_x[1] != G * H:
    raise ValueError(
      f"{name} do not fit a {c.kind} cell of hidden_size={H}: expected w_x (input, {G * H}) and "
      f"w_h ({H}, {G * H}), got w_x {w_x} and w_h {w_h}"
    )
  if w_x[0] != input_size:
    raise ValueError(
      f"xs has input size {input_size} (its last axis) but {name} expect input_size {w_x[0]}"
    )
  for field, leaf in zip(p._fields, p, strict=True):
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise TypeError(f"{name}.{field} must have a floating dtype, got {jnp.result_type(leaf)}")


def carry(c: Cell, value: Any, batch_shape: tuple[int, ...], dtype: Any) -> None:
  """``value`` has the structure, shapes and dtype of ``c.initial_carry(batch_shape, dtype)``."""
  expected = jax.eval_shape(lambda: c.initial_carry(batch_shape, dtype))
  want, got = jax.tree.structure(expected), jax.tree.structure(value)
  if want != got:
    raise TypeError(f"carry must have the structure {want} for a {c.kind} cell, got {got}")
  for e, v in zip(jax.tree.leaves(expected), jax.tree.leaves(value), strict=True):
    if tuple(np.shape(v)) != e.shape:
      raise ValueError(
        f"carry must have shape {e.shape} (*batch, hidden_size) per leaf, got {tuple(np.shape(v))}"
      )
    if jnp.result_type(v) != e.dtype:
      raise TypeError(
        f"carry must have dtype {e.dtype} (the result type of xs and params), got {jnp.result_type(v)}"
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


def pair(name: str, layer: int, value: Any) -> None:
  from gatejax.sequence import Bidirectional

  if not isinstance(value, Bidirectional):
    raise TypeError(
      f"{name}[{layer}] of a bidirectional stack must be gj.Bidirectional(forward, backward), "
      f"got {type(value).__name__}"
    )
