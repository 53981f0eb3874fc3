"""Argument checks shared by the rooms of :mod:`gatejax.train`: clear errors naming the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from gatejax import _validate
from gatejax.run.options import ScanOptions
from gatejax.tasks import Task


def cell_and_task(cell: Any, task: Any) -> None:
  _validate.cell(cell)
  if not isinstance(task, Task):
    raise TypeError(
      f"task must be a gatejax.tasks.Task (from tasks.adding, ...), got {type(task).__name__}"
    )


def scan_options(options: Any) -> None:
  """Refuse what :func:`gatejax.scan` would refuse, in its words, before anything is compiled."""
  if options is not None and not isinstance(options, ScanOptions):
    raise TypeError(f"options must be a gj.ScanOptions or None, got {type(options).__name__}")


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
  if not isinstance(value, int | np.integer) or isinstance(value, bool):
    raise TypeError(f"{name} must be an int, got {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def positive_float(name: str, value: Any, none: str | None = None) -> float | None:
  """``value`` as a float, checked to be finite and > 0 (``None`` passes when ``none`` says so)."""
  if value is None and none is not None:
    return None
  if not isinstance(value, numbers.Real) or isinstance(value, bool):
    expected = "a float" + (f" {none}" if none else "")
    raise TypeError(f"{name} must be {expected}, got {value!r:.80}")
  number = float(value)
  # inf passes a bare "> 0" (and NaN fails it with a misleading message).
  if not (math.isfinite(number) and number > 0):
    expected = "a finite number > 0" + (f" {none}" if none else "")
    raise ValueError(f"{name} must be {expected}, got {value!r}")
  return number
