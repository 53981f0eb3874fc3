"""Writing the horizon experiment: its table, the report's section, its JSON and figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.horizon._findings import findings
from gatejax.experiments.horizon._measure import Result

#: The section's title in the report.
TITLE = "Training on the adding problem: learning changes the horizon"


def _jacobian_at(curve: np.ndarray, d: int) -> float:
  return float(curve[curve.shape[0] - d])


def table(result: Result) -> str:
  """A markdown table: loss, horizon, far share and ``‖∂c_T/∂c_0‖``, before → after."""
  T = result.sizes.time
  rows = [
    "| cell | eval loss after (baseline "
    f"{result.baseline:.3f}) | horizon (steps of {T}) | far share (≥ {T // 2} back) "
    f"| ‖∂c_T/∂c_0‖ (d = {T}) |",
    "|---|---|---|---|---|",
  ]
  for name, r in result.runs.items():
    rows.append(
      f"| {name} | {_format.number(r.final_eval)} | {r.horizon_before} → {r.horizon_after} "
      f"| {_format.number(r.far_before)} → {_format.number(r.far_after)} "
      f"| {_format.number(_jacobian_at(r.jacobian_before, T))} → {_format.number(_jacobian_at(r.jacobian_after, T))} |"
    )
  return "\n".join(rows)


def to_markdown(result: Result, figures: Mapping[str, str] | None = None) -> str:
  """What was measured, the table, the findings and the figures given.

  Args:
    result: a :class:`Result`.
    figures: role (a key of :func:`figures`) -> the file to link, for those saved.
  """
  s, figures = result.sizes, figures or {}
  parts = [
    f"RNN (tanh), GRU and LSTM (sigmoid gates, default initialisation), hidden size "
    f"{s.hidden}, trained with Adam (learning rate {s.learning_rate}, gradient clipping at "
    f"global norm {s.clip_norm}) for {s.steps} steps of {s.batch} sequences of length "
    f"{s.time}. Contribution norms, horizons and far shares are measured with the training "
    f"loss on one fixed probe batch of {s.probe_batch} sequences, before and after training.",
    table(result) + "\n\n" + _common.bullets(findings(result)),
  ]
  for role, alt in (
    ("learning", "training curves"),
    ("contributions", "contribution norms before and after training"),
  ):
    if role in figures:
      parts.append(f"![{alt}]({figures[role]})")
  return "\n\n".join(parts)


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as ``"nan"``, ``"inf"``)."""
  return {
    "sizes": result.sizes._asdict(),
    "baseline": result.baseline,
    "runs": {
      name: {
        "final_eval": _format.jsonable(r.final_eval),
        "diverged": r.history.diverged,
        "horizon_before": r.horizon_before,
        "horizon_after": r.horizon_after,
        "far_share_before": _format.jsonable(r.far_before),
        "far_share_after": _format.jsonable(r.far_after),
        "loss_before": _format.jsonable(r.loss_before),
        "loss_after": _format.jsonable(r.loss_after),
        "contributions_before": _format.jsonable(r.before),
        "contributions_after": _format.jsonable(r.after),
        "jacobian_before": _format.jsonable(r.jacobian_before),
        "jacobian_after": _format.jsonable(r.jacobian_after),
        "eval_step": list(r.history.eval_step),
        "eval_loss": _format.jsonable(r.history.eval_loss),
        "seconds": r.history.seconds,
      }
      for name, r in result.runs.items()
    },
    "findings": findings(result),
  }


def figures(result: Result) -> dict[str, Any]:
  """``"learning"``: every cell's training curve against the baseline; ``"contributions"``:
  its contribution norms before and after training."""
  from gatejax import plots

  T = result.sizes.time
  return {
    "learning": plots.learning_curves(
      {n: np.asarray(r.history.loss, np.float64) for n, r in result.runs.items()},
      baseline=result.baseline,
      baseline_label="baseline: always predict 1",
      title=f"Adding problem, T = {T}",
    ),
    "contributions": plots.before_after_curves(
      {n: r.before for n, r in result.runs.items()},
      {n: r.after for n, r in result.runs.items()},
      title=f"Gradient contributions before and after training, adding problem T = {T}",
    ),
  }
