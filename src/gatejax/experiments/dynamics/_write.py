"""Writing the dynamics experiment: its tables, the report's section, its JSON and figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.dynamics._findings import (
  agreement,
  crossing,
  findings,
  method_name,
  sweeps_text,
)
from gatejax.experiments.dynamics._measure import (
  METHODS,
  CellRun,
  Measurement,
  Result,
  Sweeps,
)

#: The section's title in the report.
TITLE = "Dynamics: Lyapunov exponents and parallel evaluation"


def _ran(run: CellRun, method: str, time: int) -> bool:
  return time in run.init.newton[method].times


def cell_table(result: Result) -> str:
  """Markdown: cell × state, λ_max, log ρ, horizon, and the Newton sweeps at every length."""
  s = result.sizes
  cols = [
    (m, t) for m in METHODS for t in s.times if any(_ran(r, m, t) for r in result.cells.values())
  ]
  head = (
    f"| cell | state | eval loss | λ_max | log ρ | log ρ − λ_max | horizon (of {s.train_time}) | "
    + " | ".join(f"{method_name(m)} T={t:,}" for m, t in cols)
    + " |"
  )
  rows = [head, "|" + "---|" * (7 + len(cols))]
  for run in result.cells.values():
    for state, m in run.states():
      loss = "" if state == "init" else _format.number(run.final_eval)
      rows.append(
        f"| {run.name} | {state} | {loss} | {_common.signed(m.lam)} | {_common.signed(m.log_rho)} "
        f"| {_common.signed(m.log_rho - m.lam)} | {m.horizon} | "
        + " | ".join(sweeps_text(m.newton.get(meth), t) for meth, t in cols)
        + " |"
      )
  return "\n".join(rows)


def sweep_table(result: Result) -> str:
  """Markdown: gain, λ_max, log ρ and the DEER sweeps at every length."""
  times = result.sizes.times
  rows = [
    "| g | λ_max | log ρ | log ρ − λ_max | " + " | ".join(f"DEER T={t:,}" for t in times) + " |",
    "|" + "---|" * (4 + len(times)),
  ]
  for p in result.sweep:
    rows.append(
      f"| {p.gain:g} | {_common.signed(p.lam)} | {_common.signed(p.log_rho)} | {_common.signed(p.log_rho - p.lam)} | "
      + " | ".join(sweeps_text(p.newton, t) for t in times)
      + " |"
    )
  return "\n".join(rows)


def to_markdown(result: Result, figures: Mapping[str, str] | None = None) -> str:
  """What was measured, the two tables, the findings and the figures given.

  Args:
    result: a :class:`Result`.
    figures: role (a key of :func:`figures`) -> the file to link, for those saved.
  """
  s, figures = result.sizes, figures or {}
  reused = [r.name for r in result.cells.values() if r.trained_by == "horizon"]
  trained = [r.name for r in result.cells.values() if r.trained is not None]
  untrained = [r.name for r in result.cells.values() if r.trained is None]
  who = "Each cell" if not untrained else f"Each of {', '.join(trained)}"
  intro = (
    (
      f"{who} (hidden size {s.hidden}) at initialisation and after {s.train_steps} steps "
      f"of Adam on the adding problem, T = {s.train_time}"
      if trained
      else f"Each cell (hidden size {s.hidden}) at initialisation, T = {s.train_time}"
    )
    + (f" ({', '.join(reused)}: the models of section 3)" if reused else "")
    + (
      f"; {', '.join(untrained)} at initialisation only (their official initialisations; "
      "training them too would add minutes to the report)"
      if untrained and trained
      else ""
    )
    + f". On section 3's probe batch ({s.probe_batch} sequences): λ_max, the largest "
    "Lyapunov exponent (`gatejax.dynamics.largest_lyapunov_exponent`, natural log per step, "
    "mean over the sequences, the first tenth of the steps a transient); the gradient "
    "horizon (1% of the peak) and the contributions' fitted decay factor per step back ρ "
    "(`gatejax.analysis.decay_rate`) of the training loss; theory puts log ρ ≈ λ_max, since a "
    "contribution d steps back passes through d step Jacobians. Then the Newton sweeps "
    "`gj.parallel_scan` needed to converge (float32, residual ≤ 1e-6) on the adding "
    f"problem's inputs at T = {', '.join(f'{t:,}' for t in s.times)} with DEER (full "
    "Jacobian) and quasi-DEER (its diagonal), at most "
    f"{s.max_iter} sweeps. Last, a tanh RNN with W_h = g·N(0, 1/{s.sweep_hidden}), zero bias "
    f"and inputs N(0, {s.input_scale:g}²), swept over g (Gonzalez et al. 2025: "
    "predictability, λ_max < 0, is what makes Newton's method over the sequence converge "
    "in few sweeps)."
  )
  notes = (
    f"Sweeps: the most over {s.newton_batch} sequence(s) per length. ✗ n: not converged "
    f"after the cap of n = {s.max_iter} sweeps; ✗ ovf@n: stopped when sweep n overflowed "
    f"(float32); —: not run. quasi-DEER runs up to T = {s.quasi_max_time:,} and the longest "
    "length only for "
    + (", ".join(_common.display_name(k) for k in s.longest_cells if k in s.cells) or "no cell")
    + "; a cell linear in its carry (one scan) runs at every length with both methods"
    + ". log ρ: the contributions' fitted decay factor per step back ρ "
    "(`gatejax.analysis.decay_rate`), as a log."
  )
  parts = [
    intro,
    "\n\n".join(
      [cell_table(result), notes, sweep_table(result), _common.bullets(findings(result))]
    ),
  ]
  for role, alt in (
    ("edge_of_chaos", "λ_max and DEER sweeps against the gain"),
    ("sweeps_against_length", "Newton sweeps against the sequence length"),
  ):
    if role in figures:
      parts.append(f"![{alt}]({figures[role]})")
  return "\n\n".join(parts)


def figures(result: Result) -> dict[str, Any]:
  """The experiment's two figures, ``matplotlib.figure.Figure`` values by role.

  ``"edge_of_chaos"``: λ_max (and log ρ) and the DEER sweeps against the gain
  (:func:`gatejax.plots.lyapunov_sweep`); ``"sweeps_against_length"``: every cell's DEER
  and quasi-DEER sweeps against ``T``, at initialisation and trained
  (:func:`gatejax.plots.sweeps_against_length`). Runs that did not converge are drawn at
  the cap.
  """
  from gatejax import plots

  s = result.sizes
  out: dict[str, Any] = {}
  if result.sweep:
    curves = [p.newton.curve() for p in result.sweep]
    label = {t: f"T = {t:,}" for t in s.times}
    out["edge_of_chaos"] = plots.lyapunov_sweep(
      [p.gain for p in result.sweep],
      [p.lam for p in result.sweep],
      {label[t]: [c[1][c[0].index(t)] for c in curves] for t in s.times},
      converged={label[t]: [c[2][c[0].index(t)] for c in curves] for t in s.times},
      log_rho=[p.log_rho for p in result.sweep],
      crossing=crossing(result),
      max_iter=s.max_iter,
      failed_at=s.max_iter,
      title=f"Tanh RNN at the edge of chaos (H = {s.sweep_hidden}): λ_max and DEER sweeps",
    )
  if result.cells:
    panels = {
      method_name(m): {
        r.name: {state: meas.newton[m].curve() for state, meas in r.states()}
        for r in result.cells.values()
      }
      for m in METHODS
    }
    out["sweeps_against_length"] = plots.sweeps_against_length(
      panels,
      max_iter=s.max_iter,
      failed_at=s.max_iter,
      title="Newton sweeps of gj.parallel_scan against T, at initialisation (dashed) "
      "and after training (solid)",
    )
  return out


def _sweeps_json(sw: Sweeps) -> dict[str, Any]:
  return {
    "times": list(sw.times),
    "iterations": sw.iterations.tolist(),
    "converged": sw.converged.tolist(),
    "outcome": sw.outcomes(),
    "max_iter": sw.max_iter,
  }


def _measurement_json(m: Measurement) -> dict[str, Any]:
  return {
    "lyapunov_mean": float(m.lam),
    "lyapunov": [float(v) for v in m.lyapunov],
    "decay_rate": float(m.decay_rate),
    "log_decay_rate": float(m.log_rho),
    "horizon": m.horizon,
    "contributions": [float(v) for v in m.contributions],
    "newton": {method: _sweeps_json(sw) for method, sw in m.newton.items()},
  }


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as the strings ``"nan"``, ``"inf"``,
  ``"-inf"``, as in every JSON the library writes)."""
  return _format.jsonable(
    {
      "sizes": result.sizes._asdict(),
      "baseline": result.baseline,
      "cells": {
        kind: {
          "name": r.name,
          "linear_in_carry": r.linear,
          "trained_by": r.trained_by,
          "final_eval": float(r.final_eval),
          "init": _measurement_json(r.init),
          "trained": None if r.trained is None else _measurement_json(r.trained),
        }
        for kind, r in result.cells.items()
      },
      "sweep": [
        {
          "gain": p.gain,
          "lyapunov_mean": float(p.lam),
          "lyapunov": [float(v) for v in p.lyapunov],
          "decay_rate": float(p.decay_rate),
          "log_decay_rate": float(p.log_rho),
          "newton": _sweeps_json(p.newton),
        }
        for p in result.sweep
      ],
      "crossing_gain": crossing(result),
      "agreement": agreement(result),
      "findings": findings(result),
    }
  )
