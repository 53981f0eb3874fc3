"""Reading the gate experiment: sentences chosen by the measured numbers."""

from __future__ import annotations

import math

import numpy as np

from gatejax import _format, protocol
from gatejax.experiments import _common
from gatejax.experiments.gates._measure import (
  GATE_FUNCTIONS,
  KINDS,
  JacobianSummary,
  Result,
  TrainingSummary,
  gate_cell,
  label,
)


def median_final(tr: TrainingSummary) -> float:
  """The median final loss over the runs that did not diverge (NaN if all did)."""
  finite = tr.final[np.isfinite(tr.final)]
  return float(np.median(finite)) if finite.size else math.nan


def exploded(jac: JacobianSummary) -> bool:
  """The carry path amplifies: overflow, most whole-sequence Jacobians above 1, or growth."""
  rate = float(np.median(jac.rate)) if np.isfinite(jac.rate).all() else math.nan
  return jac.non_finite > 0 or jac.amplified > 0.5 or (math.isfinite(rate) and rate > 1)


def learned(tr: TrainingSummary, baseline: float) -> bool:
  """Whether the median run learned the task (below a tenth of the baseline, the experiments' one rule)."""
  return _common.learned(median_final(tr), baseline)


def _where(probe: str) -> str:
  return "the adding problem's inputs" if probe == "adding" else "unit Gaussian inputs"


def _init_findings(result: Result, probe: str, kind: str) -> list[str]:
  acts = result.activity[probe]
  sig, relu, hard = (acts.get(label(kind, g)) for g in ("sigmoid", "relu", "hard_sigmoid"))
  if sig is None or relu is None:
    return []
  out = []
  K, where = _common.display_name(kind), _where(probe)
  keep = protocol.keep_gate(gate_cell(kind, "sigmoid", 1)) or ""
  sig_dead = max(f.dead for f in sig.gates.values())
  dead = ", ".join(f"{_common.pct(f.dead)} of `{g}`" for g, f in relu.gates.items())
  units = max(f.dead_units for f in relu.gates.values())
  if sig_dead == 0 and min(f.dead for f in relu.gates.values()) > 0:
    out.append(
      f"{K} at initialisation, {where}: no sigmoid gate value is exactly 0, while ReLU gates "
      f"are exactly 0 for {dead} values: the one-sided suppression the seed describes. "
      + (
        "It is transient, not permanent: no ReLU gate unit is 0 along every step of every sequence."
        if units == 0
        else f"Up to {_common.pct(units)} of ReLU gate units are 0 along every step of every sequence."
      )
    )
  elif min(f.dead for f in relu.gates.values()) == 0:
    out.append(
      f"{K} at initialisation, {where}: some ReLU gate was never exactly 0, so the seed's "
      "one-sided suppression did not show there."
    )
  above = relu.gates[keep].above_one if keep in relu.gates else 0.0
  if above > 0:
    out.append(
      f"{K}, {where}: {_common.pct(above)} of ReLU keep-gate (`{keep}`) values exceed 1, which no "
      "sigmoid gate can: such a gate multiplies the carry up instead of keeping it."
    )
  if relu.non_finite > 0:
    bounded_ok = sig.non_finite == 0 and (hard is None or hard.non_finite == 0)
    out.append(
      f"{K} with ReLU gates, {where}: the hidden state overflowed to inf/NaN "
      f"({_common.pct(relu.non_finite)} of values) within {result.sizes.time} steps at "
      "initialisation; "
      + ("the bounded gates never did." if bounded_ok else "so did a bounded gate here.")
    )
  if hard is not None and keep in hard.gates and hard.gates[keep].dead > 0:
    out.append(
      f"{K}, {where}: the hard sigmoid is exactly 0 for {_common.pct(hard.gates[keep].dead)} of "
      f"`{keep}` values: a bounded gate can have flat, gradient-free regions too."
    )
  return out


def _jacobian_findings(result: Result, probe: str, kind: str) -> list[str]:
  jacs = result.jacobian[probe]
  sig, relu = jacs.get(label(kind, "sigmoid")), jacs.get(label(kind, "relu"))
  if sig is None or relu is None:
    return []
  K, where, T = _common.display_name(kind), _where(probe), result.sizes.time
  r_sig = float(np.median(sig.rate))
  r_relu = float(np.median(relu.rate)) if np.isfinite(relu.rate).all() else math.nan
  if exploded(relu):
    sig_text = (
      f"with sigmoid gates no sequence is amplified and the norm fades by {_format.number(r_sig)} per step"
      if not exploded(sig)
      else "but the sigmoid gates amplify too here"
    )
    if relu.non_finite > 0.5:
      what = (
        f"with ReLU gates the state itself overflows, and {_common.pct(relu.non_finite)} of the norms "
        "are inf/NaN"
      )
    else:
      what = (
        f"with ReLU gates ‖∂c_T/∂c_0‖ exceeds 1 for {_common.pct(relu.amplified)} of sequences over "
        f"{T} steps (fitted factor {_format.number(r_relu)} per step back"
        + (
          f", {_common.pct(relu.non_finite)} of the norms inf/NaN)" if relu.non_finite > 0 else ")"
        )
      )
    return [
      f"{K}, {where}: {what}; {sig_text}. The carry path amplifies instead of fading: a gate "
      "above 1 is an amplifier, a failure of unboundedness that one-sided suppression alone "
      "would not cause."
    ]
  comparison = "faster" if r_relu < r_sig else "slower"
  return [
    f"{K}, {where}: ‖∂c_T/∂c_k‖ fades by {_format.number(r_relu)} per step back with ReLU gates against "
    f"{_format.number(r_sig)} with sigmoid gates ({comparison}); no explosion at initialisation here."
  ]


def _training_findings(result: Result, kind: str) -> list[str]:
  runs = {g: result.training.get(label(kind, g)) for g in GATE_FUNCTIONS}
  sig, relu = runs["sigmoid"], runs["relu"]
  if sig is None or relu is None:
    return []
  parts = []
  for g, tr in runs.items():
    if tr is not None:
      med = median_final(tr)
      parts.append(
        f"{g} {_format.number(med)} ({_format.number(med / result.baseline)} × baseline, "
        f"{int(tr.diverged.sum())}/{tr.diverged.size} diverged)"
      )
  head = (
    f"{_common.display_name(kind)} trained on the adding problem (T = {result.sizes.train_time}, "
    f"{result.sizes.train_steps} steps), median final loss: " + "; ".join(parts) + "."
  )
  sig_final, relu_final = median_final(sig), median_final(relu)
  if np.mean(relu.diverged) > np.mean(sig.diverged):
    verdict = "ReLU gates diverge where sigmoid gates do not."
  elif not learned(sig, result.baseline) and not learned(relu, result.baseline):
    verdict = "Neither learned the task within this budget, so training decides nothing here."
  elif learned(sig, result.baseline) and not learned(relu, result.baseline):
    verdict = "Sigmoid gates learned the task and ReLU gates did not."
  elif relu_final > 1.5 * sig_final:
    verdict = "Both learned, ReLU gates to a worse final loss."
  elif relu_final < sig_final / 1.5:
    verdict = (
      "ReLU gates ended *better* than sigmoid gates here, against the seed's claim: with "
      "gradient clipping a ReLU-gated cell that does not overflow can train."
    )
  else:
    verdict = (
      "ReLU gates ended on a par with sigmoid gates: with gradient clipping a ReLU-gated cell "
      "that does not overflow can train, against the seed's claim."
    )
  out = [f"{head} {verdict}"]
  if relu.after is not None:
    units = {g: f.dead_units for g, f in relu.after.gates.items()}
    worst = max(units, key=lambda g: units[g])
    init = result.activity.get("adding", {}).get(label(kind, "relu"))
    before = (
      "" if init is None else f" (at initialisation: {_common.pct(init.gates[worst].dead_units)})"
    )
    if units[worst] > 0:
      out.append(
        f"After training, {_common.pct(units[worst])} of the {_common.display_name(kind)}'s ReLU `{worst}` gate "
        f"units are 0 on every step of every probe sequence{before}: units the one-sided "
        "suppression has switched off (they receive no gradient through that gate)."
      )
    else:
      out.append(
        f"After training, no ReLU gate unit of the {_common.display_name(kind)} is 0 on every step of every "
        "probe sequence: the suppression stayed transient."
      )
  return out


def _overall(result: Result) -> list[str]:
  """Where the seed's argument holds and where it fails, from the findings' conditions."""
  relu_fails, hard_ok = [], []
  for kind in KINDS:
    relu_j = [result.jacobian[p].get(label(kind, "relu")) for p in result.jacobian]
    hard_j = [result.jacobian[p].get(label(kind, "hard_sigmoid")) for p in result.jacobian]
    relu_a = [result.activity[p].get(label(kind, "relu")) for p in result.activity]
    if any(j is not None and exploded(j) for j in relu_j) or any(
      a is not None and a.non_finite > 0 for a in relu_a
    ):
      relu_fails.append(kind)
      hard_tr = result.training.get(label(kind, "hard_sigmoid"))
      sig_tr = result.training.get(label(kind, "sigmoid"))
      trains_alike = (
        hard_tr is None
        or sig_tr is None
        or (not hard_tr.diverged.any() and median_final(hard_tr) <= 2 * median_final(sig_tr))
      )
      if hard_j and all(j is not None and not exploded(j) for j in hard_j) and trains_alike:
        hard_ok.append(_common.display_name(kind))
  if not relu_fails:
    return ["No ReLU-gated cell exploded here: the measured difference is the exact zeros alone."]
  out = [
    "Overall: the seed is right that ReLU gates are exactly 0 for a large share of values, "
    f"but in {', '.join(_common.display_name(k) for k in relu_fails)} the failure that shows is the other "
    "side of the ReLU: unbounded above, a keep gate above 1 amplifies the carry and its "
    "gradient step after step."
  ]
  for kind in relu_fails:
    relu_tr = result.training.get(label(kind, "relu"))
    sig_tr = result.training.get(label(kind, "sigmoid"))
    if relu_tr is None or sig_tr is None:
      continue
    if relu_tr.diverged.mean() > sig_tr.diverged.mean():
      out.append(
        f"For the {_common.display_name(kind)} this is fatal: {int(relu_tr.diverged.sum())} of "
        f"{relu_tr.diverged.size} ReLU-gated training runs diverged "
        f"(sigmoid: {int(sig_tr.diverged.sum())})."
      )
    elif learned(relu_tr, result.baseline):
      out.append(
        f"For the {_common.display_name(kind)} it is not: with gradient clipping the ReLU-gated cell still "
        f"learned (median final loss {_format.number(median_final(relu_tr))} against "
        f"{_format.number(median_final(sig_tr))} with sigmoid gates), so 'ReLU gates fail' is not a law."
      )
  if hard_ok:
    out.append(
      "The hard sigmoid, piecewise linear with exact zeros like a ReLU but bounded by 1, "
      f"neither explodes nor trains worse than twice the sigmoid's loss in {', '.join(hard_ok)}: "
      "what a gate needs is the bounded range (0, 1) the seed names, more than smoothness or "
      "being differentiable everywhere."
    )
  return out


def findings(result: Result) -> list[str]:
  """Sentences that state what the numbers show, each chosen by the measured values.

  Nothing here is a fixed conclusion: every sentence tests the numbers it reports, so a
  run where the seed's claim fails says so.
  """
  out: list[str] = []
  for probe in result.activity:
    for kind in KINDS:
      out += _init_findings(result, probe, kind)
  for probe in result.jacobian:
    for kind in KINDS:
      out += _jacobian_findings(result, probe, kind)
  for kind in KINDS:
    out += _training_findings(result, kind)
  return out + _overall(result)
