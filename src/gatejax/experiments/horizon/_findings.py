"""Reading the horizon experiment: sentences chosen by the measured numbers."""

from __future__ import annotations

import math

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.horizon._measure import Result, Run


def learned(run: Run, baseline: float) -> bool:
  """Whether the run learned the task (below a tenth of the baseline, the experiments' one rule)."""
  return _common.learned(run.final_eval, baseline)


def findings(result: Result) -> list[str]:
  """Sentences chosen by the measured values (nothing is a fixed conclusion)."""
  out = []
  T = result.sizes.time
  for name, r in result.runs.items():
    ratio = r.final_eval / result.baseline if math.isfinite(r.final_eval) else math.nan
    if learned(r, result.baseline):
      verdict = f"learned the task (evaluation loss {_format.number(r.final_eval)}, {_format.number(ratio)} × baseline)"
    elif math.isfinite(r.final_eval):
      verdict = (
        f"did not learn it within {result.sizes.steps} steps (evaluation loss "
        f"{_format.number(r.final_eval)}, {_format.number(ratio)} × baseline)"
      )
    else:
      verdict = "diverged"
    if r.horizon_after > r.horizon_before:
      change = f"its gradient horizon grew from {r.horizon_before} to {r.horizon_after} steps"
    elif r.horizon_after < r.horizon_before:
      change = f"its gradient horizon shrank from {r.horizon_before} to {r.horizon_after} steps"
    else:
      change = f"its gradient horizon stayed at {r.horizon_before} steps"
    far = (
      f"the share of the gradient from the first half (≥ {T // 2} steps back, where the first "
      f"marked number lies) went from {_format.number(r.far_before)} to {_format.number(r.far_after)}"
    )
    out.append(f"{name} on the adding problem with T = {T} {verdict}; {change}, and {far}.")
  did = [n for n, r in result.runs.items() if learned(r, result.baseline)]
  failed = [n for n, r in result.runs.items() if not learned(r, result.baseline)]
  if did and failed:
    grew = [n for n in did if result.runs[n].far_after > result.runs[n].far_before]
    out.append(
      f"{', '.join(did)} learned and {', '.join(failed)} did not"
      + (
        f"; in {', '.join(grew)} training moved gradient signal to the far half: learning "
        "changed the horizon."
        if grew
        else ", although no cell's far share grew."
      )
    )
  return out
