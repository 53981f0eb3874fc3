"""Writing the gate experiment: tables, the report's section, its JSON and its figures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.gates._findings import findings
from gatejax.experiments.gates._measure import GATE_FUNCTIONS, KINDS, Activity, Result, label

#: The section's title in the report.
TITLE = "Why sigmoid, not ReLU: the gate experiment"


def _at_distance(norms: np.ndarray, d: int) -> float:
  """Median over seeds of the norm at distance ``d`` (entry ``T - d``)."""
  column = norms[:, norms.shape[1] - d]
  return float(np.median(column)) if np.isfinite(column).all() else math.nan


def _final_rms(rms: np.ndarray | None) -> str:
  """The last step's RMS averaged over seeds, or ``overflow`` if any seed overflowed."""
  if rms is None:
    return "–"
  last = rms[:, -1]
  return _format.number(float(np.mean(last))) if np.isfinite(last).all() else "overflow"


def _activity_rows(acts: Mapping[str, Activity]) -> list[str]:
  rows = []
  for name, act in acts.items():
    for g, f in act.gates.items():
      rows.append(
        f"| {name} | {g} | {_format.number(f.mean)} | {_common.pct(f.dead)} | {_common.pct(f.shut)} | {_common.pct(f.open)} "
        f"| {_common.pct(f.above_one)} | {_common.pct(f.dead_units)} | {_final_rms(act.hidden_rms)} "
        f"| {_final_rms(act.cell_rms)} | {_common.pct(act.non_finite)} |"
      )
  return rows


_ACTIVITY_HEAD = [
  "| cell | gate | mean | dead (=0) | shut (<0.1) | open (0.9–1] | >1 | dead units "
  "| RMS h_T | RMS c_T | non-finite h |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
]


def activity_table(result: Result, probe: str = "adding") -> str:
  """Part (a) as a markdown table: one row per configuration and gate.

  Fractions are of the finite gate values over steps, sequences and units, averaged over
  seeds; "dead units" are units whose gate is exactly 0 at every step of every sequence.
  """
  return "\n".join(_ACTIVITY_HEAD + _activity_rows(result.activity[probe]))


def trained_activity_table(result: Result) -> str:
  """Part (a) measured again after training (runs that did not diverge), adding inputs."""
  acts = {n: t.after for n, t in result.training.items() if t.after is not None}
  return "\n".join(_ACTIVITY_HEAD + _activity_rows(acts))


def jacobian_table(result: Result, probe: str = "adding") -> str:
  """Part (b) as a markdown table: norms at a few distances and the per-step factor."""
  T = result.sizes.time
  distances = sorted({d for d in (1, 10, T // 2, T) if 1 <= d <= T})
  head = " | ".join(f"d = {d}" for d in distances)
  rows = [
    f"| cell | {head} | factor per step | amplified (‖∂c_T/∂c_0‖ > 1) | non-finite |",
    "|---|" + "---|" * len(distances) + "---|---|---|",
  ]
  for name, jac in result.jacobian[probe].items():
    cells = " | ".join(_format.number(_at_distance(jac.norms, d)) for d in distances)
    rate = float(np.median(jac.rate)) if np.isfinite(jac.rate).all() else math.nan
    rows.append(
      f"| {name} | {cells} | {_format.number(rate)} | {_common.pct(jac.amplified)} | {_common.pct(jac.non_finite)} |"
    )
  return "\n".join(rows)


def training_table(result: Result) -> str:
  """Part (c) as a markdown table: final loss against the baseline, and divergence."""
  rows = [
    "| cell | final loss (median) | best run | / baseline | diverged |",
    "|---|---|---|---|---|",
  ]
  for name, tr in result.training.items():
    finite = tr.final[np.isfinite(tr.final)]
    median = float(np.median(finite)) if finite.size else math.nan
    best = float(np.min(finite)) if finite.size else math.nan
    rows.append(
      f"| {name} | {_format.number(median)} | {_format.number(best)} | {_format.number(median / result.baseline)} "
      f"| {int(tr.diverged.sum())}/{tr.diverged.size} |"
    )
  return "\n".join(rows)


def divergence_threshold() -> float:
  """:func:`gatejax.train.fit`'s default divergence threshold, read from its signature."""
  import inspect

  from gatejax import train

  return inspect.signature(train.fit).parameters["divergence_threshold"].default


def to_markdown(result: Result, figures: Mapping[str, str] | None = None) -> str:
  """What was measured, every table under its heading, the figures given, and the findings.

  Args:
    result: a :class:`Result`.
    figures: role (a key of :func:`figures`) -> the file to link, for those saved.
  """
  s, figures = result.sizes, figures or {}

  def img(role: str, alt: str) -> str:
    return f"![{alt}]({figures[role]})" if role in figures else ""

  parts = [
    "GRU and LSTM with only `gate_fn` changed: `sigmoid`, `hard_sigmoid` "
    "(`jax.nn.hard_sigmoid` = relu6(a + 3) / 6 = clip(a/6 + 1/2, 0, 1), bounded and piecewise "
    "linear) and `relu` (exactly 0 below zero, unbounded above). Same weights per seed for "
    f"all three; {s.seeds} seeds, hidden size {s.hidden}, sequences of {s.time} steps "
    f"({s.batch} per seed; the Jacobians use the first {min(s.jacobian_batch, s.batch)}). "
    "Inputs: the adding problem's own (values in [0, 1] and two marks) and unit Gaussian "
    "inputs of the same size, a stress test. Gate fractions are over finite values.",
    "### (a) The gates and the state along a sequence, at initialisation",
  ]
  for probe in result.activity:
    parts += [
      f"{probe.capitalize()} inputs:",
      activity_table(result, probe),
      img(f"hidden_{probe}", f"hidden-state size, {probe} inputs"),
      img(f"histograms_{probe}", f"gate values, {probe} inputs"),
    ]
  parts.append(
    "### (b) The carry path: ‖∂c_T/∂c_k‖₂ against the distance d = T − k, at initialisation"
  )
  for probe in result.jacobian:
    parts += [
      f"{probe.capitalize()} inputs:",
      jacobian_table(result, probe),
      img(f"jacobian_{probe}", f"carry Jacobian norms, {probe} inputs"),
    ]
  parts += [img(r, r.removeprefix("heatmap_")) for r in figures if r.startswith("heatmap_")]
  if result.training:
    parts += [
      f"### (c) Training on the adding problem, T = {s.train_time}",
      f"Adam, learning rate {s.learning_rate}, clipping at global norm {s.clip_norm}, "
      f"{s.train_steps} steps of {s.train_batch} sequences, {s.seeds} seeds per "
      f"configuration; final loss on 512 held-out sequences (baseline {result.baseline:.3f}). "
      "A run diverges when its loss turns NaN/inf or exceeds "
      f"{divergence_threshold():g} × max(baseline, initial loss) (`gatejax.train.fit`).",
      training_table(result),
      img("training", "training curves per gate function"),
      "The gates after training (runs that did not diverge), on the adding inputs of (a):",
      trained_activity_table(result),
    ]
  parts += ["### Findings", _common.bullets(findings(result))]
  return "\n\n".join(p for p in parts if p)


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as ``"nan"``, ``"inf"``; samples left out)."""
  return {
    "sizes": _format.jsonable(result.sizes),
    "baseline": result.baseline,
    "gate_functions": {
      "sigmoid": "1 / (1 + exp(-a))",
      "hard_sigmoid": "jax.nn.hard_sigmoid: relu6(a + 3) / 6 = clip(a / 6 + 0.5, 0, 1)",
      "relu": "max(a, 0)",
    },
    "activity": {
      p: {n: _format.jsonable(a._replace(samples={})) for n, a in acts.items()}
      for p, acts in result.activity.items()
    },
    "jacobian": {
      p: {n: _format.jsonable(j._replace(example=np.zeros(0))) for n, j in jacs.items()}
      for p, jacs in result.jacobian.items()
    },
    "training": {
      n: {
        "final": _format.jsonable(t.final),
        "diverged": _format.jsonable(t.diverged),
        "after": None if t.after is None else _format.jsonable(t.after._replace(samples={})),
      }
      for n, t in result.training.items()
    },
    "findings": findings(result),
  }


def figures(result: Result) -> dict[str, Any]:
  """The experiment's figures by role, ``matplotlib.figure.Figure`` values.

  Per probe: ``hidden_<probe>`` (the state's size along the sequence),
  ``histograms_<probe>`` (gate values), ``jacobian_<probe>`` (carry Jacobian norms against
  the distance); ``heatmap_<cell>_<gate>`` (the first seed's Jacobian norms per sequence,
  sigmoid and ReLU gates, adding inputs); ``training`` (the learning curves of (c)).
  """
  from gatejax import plots

  out: dict[str, Any] = {}
  for probe, acts in result.activity.items():
    out[f"hidden_{probe}"] = plots.hidden_norm_curves(
      {n: a.hidden_rms for n, a in acts.items()},
      title=f"Hidden state at initialisation, {probe} inputs",
    )
    panels = {}
    for kind in KINDS:
      runs = {fn: acts[label(kind, fn)] for fn in GATE_FUNCTIONS if label(kind, fn) in acts}
      names = next(iter(runs.values())).samples if runs else {}
      for gate_name in names:
        panels[f"{_common.display_name(kind)} {gate_name}"] = {
          fn: a.samples[gate_name] for fn, a in runs.items()
        }
    if panels:
      out[f"histograms_{probe}"] = plots.gate_histograms(
        panels, title=f"Gate values at initialisation, {probe} inputs"
      )
  for probe, jacs in result.jacobian.items():
    out[f"jacobian_{probe}"] = plots.distance_curves(
      {n: j.norms for n, j in jacs.items()},
      title=f"Carry Jacobians at initialisation, {probe} inputs",
    )
  probe = "adding" if "adding" in result.jacobian else next(iter(result.jacobian), None)
  if probe is not None:
    for name, j in result.jacobian[probe].items():
      if name.endswith((" relu", " sigmoid")):
        out[f"heatmap_{name.lower().replace(' ', '_')}"] = plots.jacobian_heatmap(
          j.example, title=f"{name}, {probe} inputs, first seed"
        )
  if result.training:
    out["training"] = plots.learning_curves(
      {n: t.losses for n, t in result.training.items()},
      baseline=result.baseline,
      baseline_label="baseline: always predict 1",
      title=f"Adding problem, T = {result.sizes.train_time}: gate functions",
    )
  return out
