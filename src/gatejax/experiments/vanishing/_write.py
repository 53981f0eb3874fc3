"""Writing the vanishing experiment: the report's section, its JSON, its figure, a terminal table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.vanishing._findings import findings, near_share, near_steps
from gatejax.experiments.vanishing._measure import Result

#: The section's title in the report.
TITLE = "Vanishing gradients at initialisation"
#: The distances ``d`` (steps back) that :func:`format_table` prints, those below ``T``.
DISTANCES = (0, 1, 10, 30, 100, 300, 1000, 3000, 10_000)


def table(result: Result) -> str:
  """A markdown table: horizon, near share, far share and decay factor per configuration."""
  T, k = result.sizes.time, near_steps(result)
  rows = [
    f"| cell | horizon (steps of {T}) | share of the last {k} steps | far share (≥ {T // 2} "
    f"back) | factor per step back |",
    "|---|---|---|---|---|",
  ]
  for r in result.runs:
    rows.append(
      f"| {r.label}{' *(linear)*' if r.linear else ''} | {r.horizon} | {near_share(r, k):.3f} "
      f"| {r.far_share:.3g} "
      f"| {r.decay_rate:.3g} |"
    )
  return "\n".join(rows)


def to_markdown(result: Result, figures: Mapping[str, str] | None = None) -> str:
  """What was measured, the table, the findings and (given its file) the figure.

  Args:
    result: a :class:`Result`.
    figures: role (a key of :func:`figures`) -> the file to link, for those saved.
  """
  s, figures = result.sizes, figures or {}
  chrono = list(
    dict.fromkeys(
      r.title for r in result.runs if r.kind is not None and r.label.endswith(f"chrono({s.time})")
    )
  )
  also = (
    f" ({', '.join(chrono)}, whose factories take a keep-gate bias, also with "
    f"`gj.chrono({s.time})`)"
    if chrono
    else ""
  )
  parts = [
    f"Each cell runs over {s.time} steps of Gaussian inputs ({s.batch} sequences, "
    f"hidden size {s.hidden}) from its default initialisation{also}; the cells linear in "
    "their carry are marked *(linear)*; the loss reads the last output only, "
    "`L = Σ_b ‖y_T‖²`, and `gatejax.analysis.contribution_norms` splits `∂L/∂θ` exactly into "
    "one term `g_t` per step (`Σ_t g_t = ∂L/∂θ`).",
    table(result) + "\n\n" + _common.bullets(findings(result)),
  ]
  if "contributions" in figures:
    parts.append(f"![contribution norm against steps back]({figures['contributions']})")
  return "\n\n".join(parts)


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as ``"nan"``, ``"inf"``)."""
  s, k = result.sizes, near_steps(result)
  return {
    "sizes": {"time": s.time, "hidden": s.hidden, "batch": s.batch, "input_size": s.input_size},
    "loss": "sum over the batch of ||y_T||^2",
    "cells": {
      r.label: {
        "contribution_norms": [float(x) for x in r.norms],
        "horizon": r.horizon,
        "far_share": r.far_share,
        f"near_share_last_{k}": near_share(r, k),
        "decay_rate": _format.jsonable(r.decay_rate),
        "linear_in_carry": r.linear,
        "affine_form": r.form,
        "kind": r.kind,
      }
      for r in result.runs
    },
  }


def figures(result: Result) -> dict[str, Any]:
  """``{"contributions": figure}``: every configuration's contribution norms against steps back."""
  from gatejax import plots

  return {
    "contributions": plots.contribution_curves(
      result.curves,
      fraction=result.sizes.fraction,
      title=f"Where the gradient comes from, at initialisation (T = {result.sizes.time})",
    )
  }


def format_table(result: Result) -> str:
  """A plain-text table for a terminal: relative contribution ``d`` steps back, and the summaries."""
  s = result.sizes
  T = s.time
  distances = [d for d in DISTANCES if d < T]
  width = max(len(run.label) for run in result.runs) + 2
  lines = [
    f"Contribution of the step d steps back, ‖g_(T-1-d)‖ / max_t ‖g_t‖, for L = Σ ‖y_(T-1)‖²"
    f" (T = {T}, hidden {s.hidden}, batch {s.batch})",
    "",
    f"{'cell':<{width}}"
    + "".join(f"{'d=' + str(d):>10}" for d in distances)
    + f"{'horizon':>9}{'far half':>10}{'ρ/step':>8}",
  ]
  for run in result.runs:
    back = run.norms[::-1]
    peak = back.max()
    relative = back / peak if peak > 0 else back
    row = "".join(f"{relative[d]:>10.1e}" for d in distances)
    lines.append(
      f"{run.label:<{width}}{row}{run.horizon:>9}{run.far_share:>10.1e}{run.decay_rate:>8.3f}"
    )
  lines += [
    "",
    f"horizon: steps back holding every step above {s.fraction:g} of the peak "
    f"(= T: the whole sequence still matters).",
    f"far half: share of Σ_t ‖g_t‖ from {T // 2} or more steps back.  "
    "ρ/step: fitted decay factor per step back.",
    "0.0e+00: below float32's range (underflowed).",
  ]
  return "\n".join(lines)
