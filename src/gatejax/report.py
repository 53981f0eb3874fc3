"""``gatejax report``: the whole argument, measured, as a markdown report with figures.

The seed article makes three claims in words: a plain RNN's gradient is dominated by the
near steps while the far ones vanish; GRU and LSTM gates fix that; and the gates must be
sigmoids, not ReLUs, because a sigmoid is a soft switch in (0, 1) while a ReLU
"suppresses one side". This command measures each claim and writes

* ``DIR/report.md``: the tables, the figures (PNG files beside it, linked relatively) and
  the findings, every sentence of which is chosen by the measured numbers;
* ``DIR/report.json``: the numbers behind them;
* ``DIR/*.png``: the figures.

Sections: (1) vanishing gradients at initialisation, (2) the gate experiment of
:mod:`gatejax.experiments.gates`, (3) training on the adding problem and how learning
changes the horizon (:mod:`gatejax.experiments.horizon`), (4) a verdict on the seed's claims,
(5) dynamics: Lyapunov exponents, the gradient's decay and parallel (Newton) evaluation,
before and after training, and the edge of chaos (:mod:`gatejax.experiments.dynamics`).

Run ``gatejax report`` (a few minutes on two CPU cores) or ``gatejax report --quick``
(tiny sizes, a smoke test).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj
from gatejax import _format, analysis
from gatejax.experiments import dynamics, gates, horizon
from gatejax.experiments.vanishing import (
  CELL_KINDS,
  VanishingResult,
  VanishingRun,
  run_vanishing,
)

__all__ = ["ReportSizes", "VanishingSizes", "add_arguments", "main", "write_report"]


class VanishingSizes(NamedTuple):
  """Arguments of :func:`gatejax.experiments.vanishing.run_vanishing` for section 1."""

  cells: tuple[str, ...] = CELL_KINDS
  time: int = 200
  hidden: int = 32
  batch: int = 16
  input_size: int = 8
  seed: int = 0


class ReportSizes(NamedTuple):
  """The sizes of every section of the report."""

  vanishing: VanishingSizes
  gates: gates.GateSizes
  horizon: horizon.HorizonSizes
  dynamics: dynamics.Sizes = dynamics.FULL


DEFAULT = ReportSizes(VanishingSizes(), gates.DEFAULT_SIZES, horizon.DEFAULT_SIZES)
QUICK = ReportSizes(
  VanishingSizes(cells=("rnn", "lstm", "min_gru"), time=30, hidden=8, batch=4),
  gates.QUICK_SIZES,
  horizon.QUICK_SIZES,
  dynamics.QUICK,
)
# What part (c) of the gate experiment trains: everything, or in quick mode the LSTM's two
# extremes (its sigmoid run shares its compiled training step with the horizon experiment).
TRAIN = {False: True, True: ("LSTM sigmoid", "LSTM relu")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax report`` (``gatejax report --help`` lists them)."""
  from gatejax import cli

  parser.add_argument(
    "--out",
    default="gatejax-report",
    help="output directory (default: gatejax-report), created if missing and checked to be "
    "writable before anything is computed; an earlier report there is replaced, and the "
    "command says so",
  )
  parser.add_argument(
    "--quick", action="store_true", help="tiny sizes: a smoke test in well under a minute"
  )
  parser.add_argument(
    "--seed",
    type=cli.seed,
    default=0,
    help=f"base seed of every experiment, in [0, {cli.MAX_SEED}]",
  )


# ---------------------------------------------------------------------------
# Section 1: vanishing gradients at initialisation
# ---------------------------------------------------------------------------


def _near_k(v: VanishingResult) -> int:
  return max(1, v.time // 10)


def _near_share(run: VanishingRun, k: int) -> float:
  return float(analysis.near_share(jnp.asarray(run.norms), k))


def _rnn_run(v: VanishingResult) -> VanishingRun | None:
  return next((r for r in v.runs if r.label.startswith("rnn")), None)


def _vanishing_markdown(v: VanishingResult) -> str:
  T, k = v.time, _near_k(v)
  rows = [
    f"| cell | horizon (steps of {T}) | share of the last {k} steps | far share (≥ {T // 2} "
    f"back) | factor per step back |",
    "|---|---|---|---|---|",
  ]
  for r in v.runs:
    rows.append(
      f"| {r.label} | {r.horizon} | {_near_share(r, k):.3f} | {r.far_share:.3g} "
      f"| {r.decay_rate:.3g} |"
    )
  lines = []
  rnn = _rnn_run(v)
  if rnn is not None:
    near = _near_share(rnn, k)
    if near > 0.5 and rnn.horizon < T:
      lines.append(
        f"The tanh RNN's gradient is dominated by the near steps: the last {k} of {T} steps "
        f"hold {near:.0%} of it, and nothing farther than {rnn.horizon} steps back reaches "
        f"{v.fraction:.0%} of the largest step. The far gradient is not zero, it is outweighed: "
        "what the seed means by vanishing (总的梯度受近距离梯度的主导)."
      )
    else:
      lines.append(
        f"Here the tanh RNN's gradient was not dominated by the near steps (last {k} steps: "
        f"{near:.0%}; horizon {rnn.horizon} of {T}): the seed's picture did not show."
      )
    gated = [r for r in v.runs if r is not rnn]
    far = [r for r in gated if r.horizon >= T // 2]
    near_sighted = [r for r in gated if r.horizon < T // 2 and not r.linear]
    if far:
      lines.append(
        "Reaching at least half the sequence at initialisation: "
        + ", ".join(f"{r.label} ({r.horizon} steps)" for r in far)
        + "."
      )
    if near_sighted:
      lines.append(
        "Near-sighted at initialisation like the RNN: "
        + ", ".join(f"{r.label} ({r.horizon} steps)" for r in near_sighted)
        + ". A keep gate starts near σ(bias), a factor below 1 per step, so gates alone do not "
        "stop the far past from fading; a chrono bias, or training (section 3), opens the path."
      )
  linear = [r for r in v.runs if r.linear]
  if linear:
    lines.append(
      "Gates that read only the input (minGRU, minLSTM; Feng et al. 2024) make the step "
      "Jacobian exactly diagonal, diag(a_t), with a_t set by x_t alone: "
      + ", ".join(
        f"{r.label} fades by {r.decay_rate:.3g} per step back (horizon {r.horizon} of {T})"
        for r in linear
      )
      + ". No gate sees the state, so nothing the state holds can keep its own past alive: "
      "the horizon is fixed by the inputs and the gate biases, and only learning those moves it."
    )
  return "\n".join(rows) + "\n\n" + "\n".join(f"- {s}" for s in lines)


def _vanishing_json(v: VanishingResult) -> dict[str, Any]:
  k = _near_k(v)
  return {
    "sizes": {"time": v.time, "hidden": v.hidden, "batch": v.batch, "input_size": v.input_size},
    "seed": v.seed,
    "loss": "sum over the batch of ||y_T||^2",
    "cells": {
      r.label: {
        "contribution_norms": [float(x) for x in r.norms],
        "horizon": r.horizon,
        "far_share": r.far_share,
        f"near_share_last_{k}": _near_share(r, k),
        "decay_rate": _format.jsonable(r.decay_rate),
        "linear_in_carry": r.linear,
      }
      for r in v.runs
    },
  }


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def _save(fig: Any, out: Path, name: str, saved: list[str]) -> str:
  from gatejax.plots import _pyplot

  fig.savefig(out / name, dpi=110)
  _pyplot().close(fig)
  saved.append(name)
  return name


def _figures(
  out: Path,
  v: VanishingResult,
  g: gates.GateExperiment,
  h: horizon.HorizonResult,
) -> dict[str, str]:
  """Draw and save every figure; returns a role -> file name mapping."""
  from gatejax import plots

  saved: list[str] = []
  figs: dict[str, str] = {}
  figs["vanishing"] = _save(
    plots.contribution_curves(
      v.curves,
      fraction=v.fraction,
      title=f"Where the gradient comes from, at initialisation (T = {v.time})",
    ),
    out,
    "vanishing_contributions.png",
    saved,
  )
  for probe in g.activity:
    acts = g.activity[probe]
    figs[f"hidden_{probe}"] = _save(
      plots.hidden_norm_curves(
        {n: a.hidden_rms for n, a in acts.items()},
        title=f"Hidden state at initialisation, {probe} inputs",
      ),
      out,
      f"gates_hidden_{probe}.png",
      saved,
    )
    panels = {}
    for kind in gates.KINDS:
      runs = {
        g: acts[gates.label(kind, g)] for g in gates.GATE_FUNCTIONS if gates.label(kind, g) in acts
      }
      names = next(iter(runs.values())).samples if runs else {}
      for gate_name in names:
        panels[f"{kind.upper()} {gate_name}"] = {g: a.samples[gate_name] for g, a in runs.items()}
    if panels:
      figs[f"histograms_{probe}"] = _save(
        plots.gate_histograms(panels, title=f"Gate values at initialisation, {probe} inputs"),
        out,
        f"gates_histograms_{probe}.png",
        saved,
      )
  for probe, jacs in g.jacobian.items():
    figs[f"jacobian_{probe}"] = _save(
      plots.distance_curves(
        {n: j.norms for n, j in jacs.items()},
        title=f"Carry Jacobians at initialisation, {probe} inputs",
      ),
      out,
      f"gates_jacobian_{probe}.png",
      saved,
    )
  probe = "adding" if "adding" in g.jacobian else next(iter(g.jacobian), None)
  if probe is not None:
    for name, j in g.jacobian[probe].items():
      if name.endswith(" relu") or name.endswith(" sigmoid"):
        slug = name.lower().replace(" ", "_")
        figs[f"heatmap_{slug}"] = _save(
          plots.jacobian_heatmap(j.example, title=f"{name}, {probe} inputs, first seed"),
          out,
          f"gates_heatmap_{slug}.png",
          saved,
        )
  if g.training:
    figs["gates_training"] = _save(
      plots.learning_curves(
        {n: t.losses for n, t in g.training.items()},
        baseline=g.baseline,
        baseline_label="baseline: always predict 1",
        title=f"Adding problem, T = {g.sizes.train_time}: gate functions",
      ),
      out,
      "gates_training.png",
      saved,
    )
  figs["horizon_learning"] = _save(
    plots.learning_curves(
      {n: np.asarray(r.history.loss, np.float64) for n, r in h.runs.items()},
      baseline=h.baseline,
      baseline_label="baseline: always predict 1",
      title=f"Adding problem, T = {h.sizes.time}",
    ),
    out,
    "horizon_learning.png",
    saved,
  )
  figs["horizon_contributions"] = _save(
    plots.before_after_curves(
      {n: r.before for n, r in h.runs.items()},
      {n: r.after for n, r in h.runs.items()},
      title=f"Gradient contributions before and after training, adding problem T = {h.sizes.time}",
    ),
    out,
    "horizon_contributions.png",
    saved,
  )
  return figs


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _verdict(v: VanishingResult, g: gates.GateExperiment, h: horizon.HorizonResult) -> list[str]:
  """One line per claim of the seed: holds, fails or undecided, from the measured numbers."""
  out = []
  rnn = _rnn_run(v)
  if rnn is not None:
    near = _near_share(rnn, _near_k(v))
    holds = near > 0.5 and rnn.horizon < v.time
    out.append(
      "**一, the near gradient dominates a plain RNN's**: "
      + ("holds" if holds else "did not show")
      + f" (the last {_near_k(v)} steps hold {near:.0%}, horizon {rnn.horizon} of {v.time})."
    )
  learned = [n for n, r in h.runs.items() if horizon._learned(r, h.baseline)]
  failed = [n for n in h.runs if n not in learned]
  if h.runs:
    gated_learned = [n for n in learned if n != "RNN"]
    horizons = "; ".join(
      f"{n} horizon {r.horizon_before} → {r.horizon_after} steps, far share "
      f"{r.far_before:.2g} → {r.far_after:.2g}"
      for n, r in h.runs.items()
    )
    out.append(
      "**二/三, gates let the gradient reach far**: "
      + ("holds after training" if gated_learned and "RNN" in failed else "not shown at this size")
      + f" (learned the adding problem at T = {h.sizes.time}: {', '.join(learned) or 'none'}; "
      f"did not: {', '.join(failed) or 'none'}; {horizons}). At initialisation the gated cells "
      "are near-sighted too: what gating buys is a path that training can open."
    )
  sig_dead = [
    a.gates[n].dead
    for acts in g.activity.values()
    for name, a in acts.items()
    if name.endswith(" sigmoid")
    for n in a.gates
  ]
  relu_dead = [
    a.gates[n].dead
    for acts in g.activity.values()
    for name, a in acts.items()
    if name.endswith(" relu")
    for n in a.gates
  ]
  if sig_dead and relu_dead:
    out.append(
      "**四.1, a sigmoid gate is a soft switch in (0, 1)**: "
      + ("holds" if max(sig_dead) == 0 else "partly: some sigmoid gates underflowed to 0")
      + "; **四.2, ReLU suppresses one side**: "
      + ("holds" if min(relu_dead) > 0 else "not everywhere")
      + f" ({min(relu_dead):.0%} to {max(relu_dead):.0%} of ReLU gate values are exactly 0)."
    )
  exploded = [
    f"{name} ({probe} inputs)"
    for probe, jacs in g.jacobian.items()
    for name, j in jacs.items()
    if name.endswith(" relu") and gates._exploded(j)
  ]
  if exploded:
    out.append(
      "**What the seed misses**: ReLU gates are unbounded above; a keep gate above 1 amplifies "
      "the carry, and the carry Jacobian grew instead of fading in " + ", ".join(exploded) + "."
    )
  trained = []
  for kind in gates.KINDS:
    runs = {fn: g.training.get(gates.label(kind, fn)) for fn in gates.GATE_FUNCTIONS}
    parts = [
      f"{fn} {int(t.diverged.sum())}/{t.diverged.size} diverged, median final loss "
      f"{_format.number(gates._median_final(t))}"
      for fn, t in runs.items()
      if t is not None
    ]
    if parts:
      trained.append(f"{kind.upper()}: " + ", ".join(parts))
  if trained:
    out.append(
      f"**In training** (adding problem, T = {g.sizes.train_time}, baseline {g.baseline:.3f}): "
      + "; ".join(trained)
      + ". Section 2's findings say which differences the seed's claims explain."
    )
  return out


def _divergence_threshold() -> float:
  """:func:`gatejax.train.fit`'s default divergence threshold, read from its signature."""
  import inspect

  from gatejax import train

  return inspect.signature(train.fit).parameters["divergence_threshold"].default


def _markdown(
  sizes: ReportSizes,
  quick: bool,
  seconds: float,
  v: VanishingResult,
  g: gates.GateExperiment,
  h: horizon.HorizonResult,
  figs: dict[str, str],
  sections: tuple[str, ...] = (),
) -> str:
  def img(role: str, alt: str) -> str:
    return f"![{alt}]({figs[role]})" if role in figs else ""

  gs, hs = sizes.gates, sizes.horizon
  parts = [
    "# gatejax report: why gates, and why sigmoid gates",
    f"Generated by `gatejax report{' --quick' if quick else ''}` on "
    f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} in {seconds:.0f} s "
    f"(JAX {jax.__version__}, {jax.default_backend()}, Python {platform.python_version()})."
    + (
      " **Quick mode: tiny sizes, a smoke test; the numbers are not meaningful.**" if quick else ""
    ),
    "Every sentence in the findings below is chosen by the measured numbers, which are also "
    "in `report.json`.",
    "## 1. Vanishing gradients at initialisation",
    f"Each cell runs over {v.time} steps of Gaussian inputs ({v.batch} sequences, "
    f"hidden size {v.hidden}) from its default initialisation (the gated cells also with "
    "chrono initialisation); the loss reads the last output only, "
    "`L = Σ_b ‖y_T‖²`, and `gatejax.analysis.contribution_norms` splits `∂L/∂θ` exactly into "
    "one term `g_t` per step (`Σ_t g_t = ∂L/∂θ`).",
    _vanishing_markdown(v),
    img("vanishing", "contribution norm against steps back"),
    "## 2. Why sigmoid, not ReLU: the gate experiment",
    "GRU and LSTM with only `gate_fn` changed: `sigmoid`, `hard_sigmoid` "
    "(`jax.nn.hard_sigmoid` = relu6(a + 3) / 6 = clip(a/6 + 1/2, 0, 1), bounded and piecewise "
    "linear) and `relu` (exactly 0 below zero, unbounded above). Same weights per seed for "
    f"all three; {gs.seeds} seeds, hidden size {gs.hidden}, sequences of {gs.time} steps "
    f"({gs.batch} per seed; the Jacobians use the first {min(gs.jacobian_batch, gs.batch)}). "
    "Inputs: the adding problem's own (values in [0, 1] and two marks) and unit Gaussian "
    "inputs of the same size, a stress test. Gate fractions are over finite values.",
  ]
  parts.append("### (a) The gates and the state along a sequence, at initialisation")
  for probe in g.activity:
    parts += [
      f"{probe.capitalize()} inputs:",
      gates.activity_table(g, probe),
      img(f"hidden_{probe}", f"hidden-state size, {probe} inputs"),
      img(f"histograms_{probe}", f"gate values, {probe} inputs"),
    ]
  parts.append(
    "### (b) The carry path: ‖∂c_T/∂c_k‖₂ against the distance d = T − k, at initialisation"
  )
  for probe in g.jacobian:
    parts += [
      f"{probe.capitalize()} inputs:",
      gates.jacobian_table(g, probe),
      img(f"jacobian_{probe}", f"carry Jacobian norms, {probe} inputs"),
    ]
  parts += [img(r, r.removeprefix("heatmap_")) for r in figs if r.startswith("heatmap_")]
  if g.training:
    parts += [
      f"### (c) Training on the adding problem, T = {gs.train_time}",
      f"Adam, learning rate {gs.learning_rate}, clipping at global norm {gs.clip_norm}, "
      f"{gs.train_steps} steps of {gs.train_batch} sequences, {gs.seeds} seeds per "
      f"configuration; final loss on 512 held-out sequences (baseline {g.baseline:.3f}). A run "
      "diverges when its loss turns NaN/inf or exceeds "
      f"{_divergence_threshold():g} × max(baseline, initial loss) (`gatejax.train.fit`).",
      gates.training_table(g),
      img("gates_training", "training curves per gate function"),
      "The gates after training (runs that did not diverge), on the adding inputs of (a):",
      gates.trained_activity_table(g),
    ]
  parts += ["### Findings", "\n".join(f"- {s}" for s in gates.findings(g))]
  parts += [
    "## 3. Training on the adding problem: learning changes the horizon",
    f"RNN (tanh), GRU and LSTM (sigmoid gates, default initialisation), hidden size "
    f"{hs.hidden}, trained with Adam (learning rate {hs.learning_rate}, gradient clipping at "
    f"global norm {hs.clip_norm}) for {hs.steps} steps of {hs.batch} sequences of length "
    f"{hs.time}. Contribution norms, horizons and far shares are measured with the training "
    f"loss on one fixed probe batch of {hs.probe_batch} sequences, before and after training.",
    horizon.to_markdown(h),
    img("horizon_learning", "training curves"),
    img("horizon_contributions", "contribution norms before and after training"),
    "## 4. The seed's claims against the measurements",
    "\n".join(f"- {s}" for s in _verdict(v, g, h)),
    *sections,
    "## Reproduce",
    f"`gatejax report --out DIR{' --quick' if quick else ''}` (also `python -m gatejax report`).",
  ]
  return "\n\n".join(p for p in parts if p) + "\n"


# ---------------------------------------------------------------------------
# Section 5: dynamics
# ---------------------------------------------------------------------------


def _dynamics_sizes(base: dynamics.Sizes, hs: horizon.HorizonSizes) -> dynamics.Sizes:
  """The dynamics sizes with the horizon experiment's training, so its models are reused."""
  return base._replace(
    hidden=hs.hidden,
    train_time=hs.time,
    train_batch=hs.batch,
    train_steps=hs.steps,
    learning_rate=hs.learning_rate,
    clip_norm=hs.clip_norm,
    probe_batch=hs.probe_batch,
  )


def _trained_by_horizon(h: horizon.HorizonResult) -> dict[str, dynamics.Trained]:
  """The horizon experiment's trained models and contributions, by cell kind."""
  return {
    name.lower(): dynamics.Trained(
      params=r.params, final_eval=r.final_eval, contributions=(r.before, r.after)
    )
    for name, r in h.runs.items()
    if r.params is not None
  }


def _dynamics_figures(out: Path, d: dynamics.Result) -> dict[str, str]:
  """Save :func:`gatejax.experiments.dynamics.figures`; role -> file name."""
  saved: list[str] = []
  return {
    f"dynamics_{role}": _save(fig, out, f"dynamics_{role}.png", saved)
    for role, fig in dynamics.figures(d).items()
  }


def _dynamics_section(d: dynamics.Result, figs: dict[str, str]) -> tuple[str, ...]:
  """Section 5 of the markdown: the heading, what was measured, the tables, figures, findings."""
  s = d.sizes
  reused = [r.name for r in d.cells.values() if r.trained_by == "horizon"]
  parts = [
    "## 5. Dynamics: Lyapunov exponents and parallel evaluation",
    f"Each cell (hidden size {s.hidden}) at initialisation and after {s.train_steps} steps "
    f"of Adam on the adding problem, T = {s.train_time}"
    + (f" ({', '.join(reused)}: the models of section 3)" if reused else "")
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
    "in few sweeps).",
    dynamics.to_markdown(d),
  ]
  for role, alt in (
    ("dynamics_edge_of_chaos", "λ_max and DEER sweeps against the gain"),
    ("dynamics_sweeps_against_length", "Newton sweeps against the sequence length"),
  ):
    if role in figs:
      parts.append(f"![{alt}]({figs[role]})")
  return tuple(parts)


def write_report(
  out: Path, *, quick: bool = False, seed: int = 0, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
  """Run every section and write ``report.md``, ``report.json`` and the figures into ``out``.

  Args:
    out: the output directory (created if missing).
    quick: tiny sizes (a smoke test).
    seed: the base seed of every experiment.
    say: a progress callback, called with one line per stage.

  Returns:
    The JSON document written to ``report.json``.
  """
  say = say or (lambda message: None)
  began = time.perf_counter()
  base = QUICK if quick else DEFAULT
  sizes = ReportSizes(
    base.vanishing._replace(seed=seed),
    base.gates,
    base.horizon._replace(seed=seed),
    _dynamics_sizes(base.dynamics, base.horizon),
  )
  out.mkdir(parents=True, exist_ok=True)
  vs = sizes.vanishing
  say(f"vanishing: {', '.join(vs.cells)} at initialisation, T = {vs.time}")
  v = run_vanishing(
    cells=vs.cells,
    time=vs.time,
    hidden=vs.hidden,
    batch=vs.batch,
    input_size=vs.input_size,
    seed=vs.seed,
  )
  g = gates.run_gates(sizes.gates, train=TRAIN[quick], seed=seed, progress=say)
  h = horizon.run_horizon(sizes.horizon, progress=say)
  d = dynamics.run(
    sizes.dynamics, key=jax.random.key(seed), trained=_trained_by_horizon(h), progress=say
  )
  say("figures")
  figs = _figures(out, v, g, h)
  figs.update(_dynamics_figures(out, d))
  seconds = time.perf_counter() - began
  (out / "report.md").write_text(
    _markdown(sizes, quick, seconds, v, g, h, figs, _dynamics_section(d, figs))
  )
  document = {
    "command": "gatejax report" + (" --quick" if quick else ""),
    "quick": quick,
    "seed": seed,
    "seconds": seconds,
    "versions": {"gatejax": gj.__version__, "jax": jax.__version__, "python": sys.version},
    "backend": jax.default_backend(),
    "figures": sorted(figs.values()),
    "vanishing": _vanishing_json(v),
    "gates": gates.to_json(g),
    "horizon": horizon.to_json(h),
    "verdict": _verdict(v, g, h),
    "dynamics": dynamics.to_json(d),
  }
  (out / "report.json").write_text(json.dumps(document, indent=1, allow_nan=False))
  return document


def main(args: argparse.Namespace) -> int:
  """``gatejax report``: check the output directory, then write the report; the exit status."""
  from gatejax import cli

  # Checked first: the report takes minutes, and a path that cannot be written would
  # only fail once it is all computed.
  out = cli.writable_directory(args.out)
  # Rerunning the README's command must work, so an earlier report is replaced, loudly.
  existing = [name for name in ("report.md", "report.json") if (out / name).exists()]
  began = time.perf_counter()

  def say(message: str) -> None:
    print(f"[{time.perf_counter() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

  say(f"gatejax report{' --quick' if args.quick else ''}: writing {out}/")
  if existing:
    say(f"replacing an earlier report: {', '.join(str(out / name) for name in existing)}")
  write_report(out, quick=args.quick, seed=args.seed, say=say)
  say(f"done: {out / 'report.md'}, {out / 'report.json'}")
  print(out / "report.md")
  return 0
