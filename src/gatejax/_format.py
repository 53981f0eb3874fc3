"""How numbers are written out, into JSON and into the report's text: one rule for every module.

Strict JSON (``json.dumps(..., allow_nan=False)``) has no NaN or infinity, and a diverged
run or an overflowed ReLU gate has both. They are written as the strings ``"nan"``,
``"inf"`` and ``"-inf"``, which :func:`read_float` (``float``) turns back into the same
values, so a :class:`~gatejax.train.History` survives a checkpoint exactly and a reader of
``report.json`` can tell an overflow (``"inf"``) from an undefined value (``"nan"``).

Example:
  >>> import json, math
  >>> import numpy as np
  >>> from gatejax import _format
  >>> json.dumps(_format.jsonable({"loss": [0.5, math.inf], "norms": np.array([1.0, np.nan])}),
  ...            allow_nan=False)
  '{"loss": [0.5, "inf"], "norms": [1.0, "nan"]}'
  >>> _format.read_float("-inf"), _format.number(0.012345), _format.number(math.nan)
  (-inf, '0.0123', 'nan')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable", "number", "read_float"]


def jsonable(x: Any) -> Any:
  """``x`` as plain JSON values: arrays and NamedTuples become lists and dicts, NumPy
  scalars Python numbers, and non-finite floats the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
  if isinstance(x, np.ndarray):
    return jsonable(x.tolist())
  if isinstance(x, np.generic):
    return jsonable(x.item())
  if isinstance(x, float):
    return x if math.isfinite(x) else repr(x)
  if isinstance(x, Mapping):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, tuple) and hasattr(x, "_asdict"):
    return jsonable(x._asdict())  # pyright: ignore[reportAttributeAccessIssue]
  if isinstance(x, list | tuple):
    return [jsonable(v) for v in x]
  return x


def read_float(x: float | int | str) -> float:
  """A float written by :func:`jsonable` (a number, or ``"nan"``, ``"inf"``, ``"-inf"``)."""
  return float(x)


def number(x: float) -> str:
  """``x`` to three significant digits for a table or a sentence; ``nan``, ``inf``, ``-inf`` as such."""
  return f"{x:.3g}"
