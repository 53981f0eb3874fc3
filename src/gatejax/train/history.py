"""What a run records: the training and evaluation series of :func:`gatejax.train.fit`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from gatejax import _format

__all__ = ["History"]

_SERIES = ("loss", "grad_norm", "metric", "eval_loss", "eval_metric")


@dataclasses.dataclass
class History:
  """What a run recorded, in plain Python lists (JSON-ready through :meth:`to_dict`).

  Attributes:
    task: the task's name.
    baseline: the task's baseline loss.
    metric_name: the task's metric name, or ``None``.
    step: the step index ``s`` of each record (the loss of the parameters after ``s``
      updates, on batch ``s``).
    loss, grad_norm: per record; ``grad_norm`` before clipping.
    metric: per record, the task metric on the training batch (empty without a metric).
    eval_step: the number of updates done at each evaluation (0 is before training).
    eval_loss, eval_metric: per evaluation, on the fixed evaluation set.
    diverged: whether the run was stopped for a NaN/infinite or exploding loss.
    diverged_at: the step whose loss diverged, or ``None``.
    initial_loss: the loss of the first step of the run (the divergence reference).
    seconds: wall-clock time spent in :func:`~gatejax.train.fit`, summed over resumed segments.
  """

  task: str = ""
  baseline: float = math.nan
  metric_name: str | None = None
  step: list[int] = dataclasses.field(default_factory=list)
  loss: list[float] = dataclasses.field(default_factory=list)
  grad_norm: list[float] = dataclasses.field(default_factory=list)
  metric: list[float] = dataclasses.field(default_factory=list)
  eval_step: list[int] = dataclasses.field(default_factory=list)
  eval_loss: list[float] = dataclasses.field(default_factory=list)
  eval_metric: list[float] = dataclasses.field(default_factory=list)
  diverged: bool = False
  diverged_at: int | None = None
  initial_loss: float | None = None
  seconds: float = 0.0

  def to_dict(self) -> dict[str, Any]:
    """A dict of plain JSON values (non-finite floats as the strings ``"nan"``, ``"inf"``)."""
    return _format.jsonable(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> History:
    """The inverse of :meth:`to_dict`."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
      raise ValueError(f"data has fields History does not know: {sorted(unknown)}")
    values = dict(data)
    for name in _SERIES:
      if name in values:
        values[name] = [_format.read_float(v) for v in values[name]]
    for name in ("step", "eval_step"):
      if name in values:
        values[name] = [int(v) for v in values[name]]
    if "baseline" in values:
      values["baseline"] = _format.read_float(values["baseline"])
    if values.get("initial_loss") is not None:
      values["initial_loss"] = _format.read_float(values["initial_loss"])
    return cls(**values)

  def arrays(self) -> dict[str, np.ndarray]:
    """The series as NumPy arrays (``step``, ``loss``, ..., ``eval_metric``)."""
    names = ("step", *_SERIES[:3], "eval_step", *_SERIES[3:])
    return {name: np.asarray(getattr(self, name)) for name in names}
