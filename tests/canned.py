"""Canned experiment results: one QUICK run of each room, saved as JSON, loaded as Result values.

The findings, markdown, table, JSON and figure tests read these instead of re-running an
experiment: what they test is the reading and writing of a result, not the measuring
(each room keeps one test that runs it). The files are ``tests/data/<room>_quick.json``,
written by ``tests/data/make_canned.py`` (its docstring has the command).

The encoding is generic and lossless for what the rooms hold: NamedTuples and dataclasses
by their qualified type name, NumPy arrays with their dtype, dicts, tuples, lists and
non-finite floats; :func:`load` rebuilds the same values (``np.testing`` equal).
"""

import dataclasses
import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
#: Values kept of each gate's histogram sample.
SAMPLES = 64


def _type_name(x: Any) -> str:
  """``module:qualname`` of ``x``'s type, by its most public module: the shortest package
  path that still holds it (``gatejax.experiments.gates:Result``, not its ``_measure``), so
  that files survive a move of the type between a package's private modules."""
  cls = type(x)
  module = cls.__module__
  while "." in module:
    parent = importlib.import_module(module.rpartition(".")[0])
    if getattr(parent, cls.__qualname__, None) is not cls:
      break
    module = parent.__name__
  return f"{module}:{cls.__qualname__}"


def _float(x: float) -> Any:
  return x if math.isfinite(x) else {"float": repr(x)}


def encode(x: Any) -> Any:
  """``x`` as plain JSON values that :func:`decode` turns back into ``x``."""
  if isinstance(x, np.ndarray) or type(x).__module__.startswith("jax"):
    a = np.asarray(x)
    flat = [_float(float(v)) if a.dtype.kind == "f" else v.item() for v in a.ravel()]
    return {"array": flat, "dtype": str(a.dtype), "shape": list(a.shape)}
  if isinstance(x, np.generic):
    return encode(x.item())
  if isinstance(x, tuple) and hasattr(x, "_fields"):
    return {"namedtuple": _type_name(x), "fields": {k: encode(v) for k, v in x._asdict().items()}}
  if dataclasses.is_dataclass(x) and not isinstance(x, type):
    fields = {f.name: encode(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return {"dataclass": _type_name(x), "fields": fields}
  if isinstance(x, dict):
    return {"dict": [[encode(k), encode(v)] for k, v in x.items()]}
  if isinstance(x, tuple):
    return {"tuple": [encode(v) for v in x]}
  if isinstance(x, list):
    return [encode(v) for v in x]
  if isinstance(x, float):
    return _float(x)
  if x is None or isinstance(x, bool | int | str):
    return x
  raise TypeError(f"cannot can a {type(x).__name__}")


def _type(name: str) -> Any:
  module, _, qualname = name.partition(":")
  obj: Any = importlib.import_module(module)
  for part in qualname.split("."):
    obj = getattr(obj, part)
  return obj


def decode(x: Any) -> Any:
  """The inverse of :func:`encode`."""
  if isinstance(x, list):
    return [decode(v) for v in x]
  if not isinstance(x, dict):
    return x
  if "float" in x:
    return float(x["float"])
  if "array" in x:
    values = [float(v["float"]) if isinstance(v, dict) else v for v in x["array"]]
    return np.asarray(values, dtype=x["dtype"]).reshape(x["shape"])
  if "namedtuple" in x or "dataclass" in x:
    cls = _type(x.get("namedtuple") or x["dataclass"])
    return cls(**{k: decode(v) for k, v in x["fields"].items()})
  if "dict" in x:
    return {decode(k): decode(v) for k, v in x["dict"]}
  if "tuple" in x:
    return tuple(decode(v) for v in x["tuple"])
  raise ValueError(f"not a canned value: {sorted(x)}")


def trim(name: str, result: Any) -> Any:
  """A room's result as canned: without the horizon room's trained parameters (``Run.params``,
  for the dynamics room in the same process) and with the first :data:`SAMPLES` values of each
  gate's histogram sample."""
  if name == "horizon":
    return result._replace(runs={n: r._replace(params=None) for n, r in result.runs.items()})
  if name == "gates":

    def short(activity: Any) -> Any:
      return activity._replace(samples={g: v[:SAMPLES] for g, v in activity.samples.items()})

    return result._replace(
      activity={p: {n: short(a) for n, a in acts.items()} for p, acts in result.activity.items()},
      training={
        n: t._replace(after=None if t.after is None else short(t.after))
        for n, t in result.training.items()
      },
    )
  return result


def skeleton(x: Any) -> Any:
  """The shape of a canned value without its numbers: types, field names, keys, array dtypes
  and ranks (a QUICK run on another machine has other numbers, the same skeleton)."""
  if isinstance(x, list):
    return [skeleton(v) for v in x]
  if not isinstance(x, dict):
    return type(x).__name__
  if "array" in x:
    return ("array", x["dtype"], len(x["shape"]))
  if "float" in x:
    return "float"
  if "fields" in x:
    return (x.get("namedtuple") or x["dataclass"], {k: skeleton(v) for k, v in x["fields"].items()})
  if "dict" in x:
    return {json.dumps(k): skeleton(v) for k, v in x["dict"]}
  return ("tuple", [skeleton(v) for v in x["tuple"]])


def save(name: str, result: Any) -> Path:
  """Write ``trim(name, result)`` to ``tests/data/<name>_quick.json``."""
  path = DATA / f"{name}_quick.json"
  text = json.dumps(encode(trim(name, result)), separators=(",", ":"), allow_nan=False)
  path.write_text(text + "\n")
  return path


def load(name: str) -> Any:
  """The canned QUICK result of a room (``"vanishing"``, ``"gates"``, ``"horizon"``,
  ``"dynamics"``)."""
  return decode(json.loads((DATA / f"{name}_quick.json").read_text()))
