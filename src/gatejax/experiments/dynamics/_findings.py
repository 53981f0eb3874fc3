"""Reading the dynamics experiment: summaries of the sweeps and sentences chosen by the numbers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from gatejax.experiments import _common
from gatejax.experiments.dynamics._measure import METHODS, STATES, Result, Sweeps


def crossing(result: Result) -> float | None:
  """The gain at which λ_max first turns non-negative, linearly interpolated; ``None`` if never."""
  pts = result.sweep
  for a, b in itertools.pairwise(pts):
    if a.lam < 0 <= b.lam:
      return a.gain + (b.gain - a.gain) * (-a.lam) / (b.lam - a.lam)
  return None


def sweeps_text(s: Sweeps | None, time: int) -> str:
  """How tables and sentences write the sweeps at a length: the count, ``✗ n`` (not
  converged at the cap ``n``), ``✗ ovf@n`` (sweep ``n`` overflowed) or ``—`` (not run)."""
  entry = s.at(time) if s is not None else None
  if entry is None:
    return "—"
  count, outcome = entry
  return {"converged": str(count), "cap": f"✗ {count}", "overflow": f"✗ ovf@{count}"}[outcome]


def lyapunov_and_decay(result: Result) -> list[tuple[str, float, float]]:
  """``(label, λ_max, log ρ)`` for every cell state and gain."""
  rows = [
    (f"{run.name} ({state})", m.lam, m.log_rho)
    for run in result.cells.values()
    for state, m in run.states()
  ]
  rows += [(f"tanh RNN, g = {p.gain:g}", p.lam, p.log_rho) for p in result.sweep]
  return rows


def agreement(result: Result) -> dict[str, float]:
  """How close :math:`\\log\\rho` is to :math:`\\lambda_{\\max}` over every cell state and gain.

  Returns:
    ``{"count", "median_abs_difference", "max_abs_difference", "same_sign", "correlation"}``
    over the rows where both are finite (``correlation`` is Pearson's, ``nan`` for fewer
    than three rows or a constant column).
  """
  pairs = np.array([(lam, lr) for _, lam, lr in lyapunov_and_decay(result)], np.float64).reshape(
    -1, 2
  )
  pairs = pairs[np.isfinite(pairs).all(axis=1)]
  if pairs.size == 0:
    return {
      "count": 0,
      "median_abs_difference": math.nan,
      "max_abs_difference": math.nan,
      "same_sign": 0,
      "correlation": math.nan,
    }
  diff = np.abs(pairs[:, 1] - pairs[:, 0])
  corr = (
    float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    if len(pairs) >= 3 and pairs.std(axis=0).min() > 0
    else math.nan
  )
  return {
    "count": len(pairs),
    "median_abs_difference": float(np.median(diff)),
    "max_abs_difference": float(diff.max()),
    "same_sign": int(np.sum(np.sign(pairs[:, 0]) == np.sign(pairs[:, 1]))),
    "correlation": corr,
  }


def method_name(method: str) -> str:
  """How the tables name a method: ``"deer"`` -> ``"DEER"``, ``"quasi"`` -> ``"quasi-DEER"``."""
  return {"deer": "DEER", "quasi": "quasi-DEER"}.get(method, method)


def classify(s: Sweeps) -> str:
  """``"flat"`` (converged at every length, the longest needing at most twice the sweeps of
  the shortest), ``"grows"`` (converged, more than twice), ``"fails"`` (some length did not
  converge) or ``"single"`` (fewer than two lengths)."""
  if len(s.times) < 2:
    return "single"
  if not s.converged.all():
    return "fails"
  first, last = s.iterations[0].max(), s.iterations[-1].max()
  return "flat" if last <= 2 * max(int(first), 1) else "grows"


def _row(s: Sweeps) -> str:
  return ", ".join(f"{sweeps_text(s, t)} at T = {t:,}" for t in s.times)


def _separation(cases: Sequence[tuple[str, Sweeps, float]]) -> str | None:
  """Whether λ_max separates the flat cases from the others, in numbers."""
  flat = [lam for _, sw, lam in cases if classify(sw) == "flat"]
  other = [lam for _, sw, lam in cases if classify(sw) in ("grows", "fails")]
  if not flat or not other:
    return None
  # Compared as printed (three decimals): -0.0080 and -0.0077 both read -0.008.
  if round(max(flat), 3) < round(min(other), 3):
    return (
      f"λ_max separates them: flat wherever λ_max ≤ {max(flat):+.3f}, growing or failing "
      f"wherever λ_max ≥ {min(other):+.3f}."
    )
  return (
    f"λ_max alone does not separate them: runs as close to 0 as λ_max = {max(flat):+.3f} "
    f"stayed flat, while one with λ_max = {min(other):+.3f} grew or failed."
  )


def _newton_findings(result: Result) -> list[str]:
  out = []
  overflowed_contracting = []
  for method in METHODS:
    cases = [
      (f"{r.name} {state}", m.newton[method], m.lam)
      for r in result.cells.values()
      if not r.linear
      for state, m in r.states()
    ]
    cases = [c for c in cases if classify(c[1]) != "single"]
    if not cases:
      continue
    name = method_name(method)
    groups = {k: [c for c in cases if classify(c[1]) == k] for k in ("flat", "grows", "fails")}
    parts = [
      f"{what} for "
      + "; ".join(f"{n} (λ_max {lam:+.3f}: {_row(sw)})" for n, sw, lam in groups[key])
      for key, what in (
        ("flat", "Flat in T"),
        ("grows", "Growing with T"),
        ("fails", "Not converging at some length"),
      )
      if groups[key]
    ]
    sentence = f"{name} sweeps. " + ". ".join(parts) + "."
    sep = _separation(cases)
    out.append(sentence + (f" {sep}" if sep else ""))
    overflowed_contracting += [
      f"{name}, {n}" for n, sw, lam in cases if lam < 0 and "overflow" in sw.outcomes()
    ]
  if overflowed_contracting:
    out.append(
      "A sweep overflowed (ovf) in runs whose λ_max < 0 ("
      + "; ".join(overflowed_contracting)
      + "): Newton's linear recurrence is linearised at the current guess, not at the "
      "solution, and along a poor guess (the first is the initial carry at every step, far "
      "from the trajectory) it can expand over thousands of steps while the true trajectory "
      'contracts; float32 overflows near e^88. ELK\'s damping (`method="elk"`) exists for this.'
    )
  return out


def findings(result: Result) -> list[str]:
  """Sentences chosen by the measured numbers."""
  out: list[str] = []
  s = result.sizes
  for state in STATES:
    runs = {r.name: m for r in result.cells.values() for st, m in r.states() if st == state}
    if not runs:
      continue
    positive = [n for n, m in runs.items() if m.lam >= 0]
    text = ", ".join(f"{n} {_common.signed(m.lam)}" for n, m in runs.items())
    where = "at initialisation" if state == "init" else "after training"
    if not positive:
      out.append(
        f"Every cell is contracting {where} (λ_max < 0 per step: {text}): perturbations of "
        "the carry, and gradients through it, shrink."
      )
    else:
      out.append(f"λ_max {where}: {text}; not contracting (λ_max ≥ 0) for {', '.join(positive)}.")
  # Compared as printed (three decimals), so a sentence never reports -0.211 → -0.211.
  moved = {
    r.name: (round(abs(r.trained.lam), 3) - round(abs(r.init.lam), 3), r.init, r.trained)
    for r in result.cells.values()
    if r.trained is not None
  }
  closer = [(n, a, b) for n, (change, a, b) in moved.items() if change < 0]
  farther = [(n, a, b) for n, (change, a, b) in moved.items() if change > 0]
  if closer:
    out.append(
      "Training moved λ_max towards 0, a longer memory, for "
      + ", ".join(f"{n} ({_common.signed(a.lam)} → {_common.signed(b.lam)})" for n, a, b in closer)
      + "."
    )
  if farther:
    out.append(
      "Training moved λ_max away from 0, a shorter memory, for "
      + ", ".join(f"{n} ({_common.signed(a.lam)} → {_common.signed(b.lam)})" for n, a, b in farther)
      + "."
    )
  a = agreement(result)
  if a["count"]:
    close = (
      a["median_abs_difference"]
      <= 0.1 * max(1e-3, float(np.median([abs(lam) for _, lam, _ in lyapunov_and_decay(result)])))
      or a["median_abs_difference"] <= 0.01
    )
    out.append(
      f"log ρ (the gradient contributions' fitted log-factor per step back) against λ_max, "
      f"over {a['count']} cell states and gains: median |log ρ − λ_max| = "
      f"{a['median_abs_difference']:.3f} per step (largest {a['max_abs_difference']:.3f}), "
      f"the same sign in {a['same_sign']} of {a['count']}"
      + (f", correlation {a['correlation']:.3f}" if math.isfinite(a["correlation"]) else "")
      + ". "
      + (
        "The gradient's decay per step is the largest Lyapunov exponent to that accuracy: "
        "ρ ≈ exp(λ_max)."
        if close
        else "They differ by more than a tenth of a typical |λ_max|: the read-out, the "
        "per-step parameter Jacobians and the fit over one short, batch-summed curve move "
        "log ρ away from λ_max."
      )
    )
  out += _newton_findings(result)
  linear = [r for r in result.cells.values() if r.linear]
  if linear:
    ones = all(
      (meas.newton[m].iterations == 1).all() and meas.newton[m].converged.all()
      for r in linear
      for _, meas in r.states()
      for m in METHODS
    )
    trained_too = all(r.trained is not None for r in linear)
    lengths = sorted({t for r in linear for t in r.init.newton["deer"].times})
    out.append(
      ", ".join(r.name for r in linear)
      + (" are" if len(linear) > 1 else " is")
      + " linear in the carry: "
      + (
        "gj.parallel_scan solved every run in exactly 1 sweep (one associative scan, "
        f"exact) at T = {', '.join(f'{t:,}' for t in lengths)}, "
        + ("before and after training." if trained_too else "at every state measured.")
        if ones
        else "yet some run took more than one sweep; see the table."
      )
    )
  pts = result.sweep
  if pts:
    g_c = crossing(result)
    lam_text = ", ".join(f"g = {p.gain:g}: {_common.signed(p.lam)}" for p in pts)
    lead = f"Tanh RNN, W_h = g·N(0, 1/{s.sweep_hidden}), inputs N(0, {s.input_scale:g}²): λ_max "
    if g_c is not None:
      out.append(lead + f"crosses 0 at g ≈ {g_c:.2f} (linear interpolation; {lam_text}).")
    else:
      sign = (
        "negative at every gain" if all(p.lam < 0 for p in pts) else "never crosses 0 from below"
      )
      out.append(lead + f"is {sign} ({lam_text}).")
    cases = [(f"g = {p.gain:g}", p.newton, p.lam) for p in pts]
    flat = [c for c in cases if classify(c[1]) == "flat"]
    other = [c for c in cases if classify(c[1]) in ("grows", "fails")]
    if flat:
      out.append(
        "DEER flat in T (converged at every length, at most twice the sweeps at the longest): "
        + "; ".join(f"{n} (λ_max {lam:+.3f}): {_row(sw)}" for n, sw, lam in flat)
        + "."
      )
    if other:
      out.append(
        "DEER growing with T or not converging: "
        + "; ".join(f"{n} (λ_max {lam:+.3f}): {_row(sw)}" for n, sw, lam in other)
        + "."
      )
    sep = _separation(cases)
    if sep:
      out.append(
        sep + " Predictability (λ_max well below 0) is what lets Newton's method evaluate a "
        "long sequence in a few parallel sweeps."
      )
  return out
