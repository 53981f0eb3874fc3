"""What a checkpoint records about its run, and how two descriptions are compared.

A checkpoint stores the description of the cell and task it belongs to (:func:`describe`)
and of its optax transformation (:func:`describe_optimizer`); restoring compares them
with the run it is restored into and names every difference. :mod:`gatejax.train.checkpoints`
says what the comparison detects and what it cannot see.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from gatejax import protocol
from gatejax.cells import Cell
from gatejax.tasks import Task

__all__ = ["describe", "describe_optimizer"]


def describe(cell: Cell, task: Task) -> dict[str, Any]:
  """The JSON description of a run's model and task that a checkpoint stores and checks.

  Example:
    >>> import gatejax as gj
    >>> from gatejax import tasks, train
    >>> train.describe(gj.gru(8), tasks.adding(20))["cell"]
    {'kind': 'gru', 'hidden_size': 8, 'input_size': 2, 'reset': 'after', 'update_bias': 0.0, 'gate_fn': 'sigmoid', 'activation': 'tanh'}
  """
  protocol.require(cell)
  if not isinstance(task, Task):
    raise TypeError(f"task must be a gatejax.tasks.Task, got {type(task).__name__}")
  described = protocol.config(cell)
  return {
    "cell": {
      **{k: described[k] for k in ("kind", "type") if k in described},
      "hidden_size": cell.hidden_size,
      "input_size": task.input_size,
      **{k: v for k, v in described.items() if k not in ("kind", "type", "hidden_size")},
    },
    "task": {
      "name": task.name,
      "time": task.time,
      "input_size": task.input_size,
      "output_size": task.output_size,
      "readout": task.readout,
      "kind": task.kind,
    },
  }


_MAX_ENTRIES = 2000
_MAX_DEPTH = 24


def _describe_value(value: Any, path: str, out: dict[str, Any], seen: frozenset[int]) -> None:
  """Add ``path: description`` entries for ``value`` and what it closes over to ``out``."""
  if len(out) >= _MAX_ENTRIES:
    out["..."] = "truncated"
    return
  if value is None or isinstance(value, bool | int | str):
    out[path] = value
    return
  if isinstance(value, float):
    out[path] = value if math.isfinite(value) else repr(value)  # strict JSON
    return
  if isinstance(value, np.ndarray | np.generic | jax.Array):
    a = np.asarray(jax.device_get(value))
    text = repr(a.tolist()) if a.size <= 16 else hashlib.sha256(a.tobytes()).hexdigest()[:16]
    out[path] = f"{a.dtype}{list(a.shape)} {text}"
    return
  if isinstance(value, type | np.dtype):
    out[path] = str(getattr(value, "__qualname__", value))
    return
  if id(value) in seen or path.count(".") > _MAX_DEPTH:
    out[path] = "<recursion>"
    return
  seen = seen | {id(value)}
  if isinstance(value, functools.partial):
    _describe_value(value.func, f"{path}.func", out, seen)
    for i, arg in enumerate(value.args):
      _describe_value(arg, f"{path}.args[{i}]", out, seen)
    for name, arg in sorted(value.keywords.items()):
      _describe_value(arg, f"{path}.{name}", out, seen)
  elif isinstance(value, types.MethodType):
    _describe_value(value.__func__, path, out, seen)
  elif isinstance(value, types.FunctionType):
    # The name, not the module: a run resumed from a notebook or a script is the same run.
    out[f"{path}.fn"] = value.__qualname__
    for name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=True):
      try:
        content = cell.cell_contents
      except ValueError:  # a closure variable not yet assigned
        continue
      _describe_value(content, f"{path}.{name}", out, seen)
    for i, default in enumerate(value.__defaults__ or ()):
      _describe_value(default, f"{path}.defaults[{i}]", out, seen)
    for name, default in sorted((value.__kwdefaults__ or {}).items()):
      _describe_value(default, f"{path}.{name}", out, seen)
  elif isinstance(value, tuple) and hasattr(value, "_fields"):
    named: Any = value
    out[f"{path}.type"] = type(value).__qualname__
    for name in named._fields:
      _describe_value(getattr(value, name), f"{path}.{name}", out, seen)
  elif dataclasses.is_dataclass(value) and not isinstance(value, type):
    out[f"{path}.type"] = type(value).__qualname__
    for field in dataclasses.fields(value):
      _describe_value(getattr(value, field.name), f"{path}.{field.name}", out, seen)
  elif isinstance(value, list | tuple):
    for i, item in enumerate(value):
      _describe_value(item, f"{path}[{i}]", out, seen)
  elif isinstance(value, dict):
    for key in sorted(value, key=str):
      _describe_value(value[key], f"{path}[{str(key)!r}]", out, seen)
  else:
    # Opaque (a jitted function, a C object): its type only; its repr may hold an address.
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    out[path] = f"<{type(value).__qualname__}{' ' + name if isinstance(name, str) else ''}>"


def describe_optimizer(optimizer: optax.GradientTransformation) -> dict[str, Any]:
  """A JSON description of an optax transformation that two equal transformations share.

  Read from the closures of ``optimizer.init`` and ``optimizer.update``: each function by
  its qualified name, each number, string, flag and small array it closes over or takes
  as a default by its value (larger arrays by a hash). Checkpoints store it and restoring
  compares it, so resuming with another optimizer, or the same with other
  hyperparameters, is refused. The module docstring says what it cannot see.

  Example:
    >>> import optax
    >>> from gatejax import train
    >>> a = train.describe_optimizer(optax.adam(1e-3))
    >>> b = train.describe_optimizer(optax.adam(1e-2))
    >>> {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    {'update.update_fns[1].tx.update.step_size': (-0.001, -0.01)}
  """
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r:.80}")
  out: dict[str, Any] = {"type": type(optimizer).__qualname__}
  for name in ("init", "update"):
    _describe_value(getattr(optimizer, name), name, out, frozenset())
  return out


def optimizer_mismatches(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
  """One line per value that differs between two :func:`describe_optimizer` descriptions."""
  absent = object()

  def show(value: Any) -> str:
    return "nothing" if value is absent else repr(value)

  keys = sorted(set(stored) | set(wanted))
  differ = [k for k in keys if stored.get(k, absent) != wanted.get(k, absent)]
  out = [
    f"optimizer {k}: checkpoint has {show(stored.get(k, absent))}, "
    f"expected {show(wanted.get(k, absent))}"
    for k in differ[:10]
  ]
  if len(differ) > 10:
    out.append(f"optimizer: {len(differ) - 10} more differences")
  return out


def init_only_of(cell: Any) -> frozenset[str]:
  """The options of ``cell`` that only shape ``init``: a restored state has its own parameters."""
  return protocol.init_only(cell)


# What the arrays' shapes depend on: checked even with strict=False.
_SHAPE_FIELDS = {
  "cell": ("kind", "type", "hidden_size", "input_size"),
  "task": ("input_size", "output_size"),
}


def mismatches(
  stored: Mapping[str, Any], wanted: Mapping[str, Any], strict: bool, init_only: frozenset[str]
) -> list[str]:
  """One line per field of two :func:`describe` descriptions that differs.

  ``init_only`` names cell options that may differ; without ``strict`` only what the
  arrays' shapes depend on is compared.
  """
  out = []
  for part in ("cell", "task"):
    have, want = stored.get(part, {}), wanted[part]
    for field, value in want.items():
      skip = part == "cell" and field in init_only
      if skip or (not strict and field not in _SHAPE_FIELDS[part]):
        continue
      if have.get(field) != value:
        out.append(f"{part}.{field}: checkpoint has {have.get(field)!r}, expected {value!r}")
  return out


def run_description(key: PRNGKeyArray, batch_size: int) -> dict[str, Any]:
  """What a run started from a directory records beyond its model: its key and batch size."""
  typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  key_data = np.asarray(jax.random.key_data(key) if typed else key).tolist()
  return {"key": key_data, "batch_size": batch_size}
