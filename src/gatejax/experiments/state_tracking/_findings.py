"""Reading the state-tracking experiment: sentences chosen by the measured numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.state_tracking._measure import (
  VARIANTS,
  Result,
  Run,
  by_cell,
  label,
  title,
)

#: A length counts as solved when the scaled accuracy ``(acc − chance)/(1 − chance)`` there
#: is at least this (parity: accuracy 0.95).
SOLVED = 0.9
#: Scaled accuracy at or below this is "at chance".
AT_CHANCE = 0.1
#: The published number and ours agree when they differ by at most this (scaled accuracy).
AGREE = 0.1
#: Chance accuracy of each part's task.
CHANCE = {"parity": 0.5, "cycle": 0.2, "flip_flop": 0.5}


def scaled(accuracy: Any, chance: float) -> np.ndarray:
  """``(acc − chance) / (1 − chance)``: 0 at chance, 1 perfect (Grazzi et al. 2025)."""
  return (np.asarray(accuracy, np.float64) - chance) / (1 - chance)


def learned(run: Run, lengths: Sequence[int], train_length: int, chance: float) -> bool:
  """Whether a run solved its task at every test length within the training range
  (scaled accuracy at least ``SOLVED``); a diverged run never did."""
  inside = [i for i, n in enumerate(lengths) if n <= train_length]
  s = scaled(run.accuracy, chance)
  return not run.diverged and bool(inside) and all(s[i] >= SOLVED for i in inside)


def holds_to(run: Run, lengths: Sequence[int], chance: float) -> int:
  """The longest test length up to which every test length is solved (0 if the first is not)."""
  out = 0
  for n, s in zip(lengths, scaled(run.accuracy, chance), strict=True):
    if not s >= SOLVED:
      break
    out = n
  return out


def fails_at(run: Run, lengths: Sequence[int], chance: float) -> int | None:
  """The first test length that is not solved, ``None`` if every one is."""
  for n, s in zip(lengths, scaled(run.accuracy, chance), strict=True):
    if not s >= SOLVED:
      return n
  return None


def band(values: Sequence[float]) -> str:
  """``"0.5"`` for one value or equal values, ``"0.5 to 0.9"`` for a range; ``n/a`` if none finite."""
  finite = [v for v in values if math.isfinite(v)]
  if not finite:
    return "n/a"
  lo, hi = _format.number(min(finite)), _format.number(max(finite))
  return lo if lo == hi else f"{lo} to {hi}"


def _ranks(x: np.ndarray) -> np.ndarray:
  order = np.argsort(x, kind="stable")
  ranks = np.empty(len(x), np.float64)
  ranks[order] = np.arange(len(x), dtype=np.float64)
  for value in np.unique(x):  # ties share their mean rank
    tied = x == value
    ranks[tied] = ranks[tied].mean()
  return ranks


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman's rank correlation of two samples (ties at mean rank); ``nan`` when either is
  constant or fewer than three pairs are finite."""
  a, b = np.asarray(x, np.float64), np.asarray(y, np.float64)
  keep = np.isfinite(a) & np.isfinite(b) | (np.isinf(a) & np.isfinite(b))
  a, b = a[keep], b[keep]
  if len(a) < 3:
    return math.nan
  ra, rb = _ranks(a), _ranks(b)
  if ra.std() == 0 or rb.std() == 0:
    return math.nan
  return float(np.corrcoef(ra, rb)[0, 1])


class Predictors(NamedTuple):
  """E2: how well each measure predicts accuracy beyond the training length.

  Attributes:
    runs: the runs that solved parity within the training range (the ones that can fail beyond).
    points: (run, length) pairs beyond the training length.
    separation, relative, lyapunov, horizon: Spearman correlation of accuracy with the
      measure over those points: the state separation r(T), r(T) relative to r at the
      longest training length (a run's own scale divided out), λ_max and the gradient horizon
      (one value per run).
    held_lyapunov, failed_lyapunov: λ_max of the runs that held to the longest test length,
      and of those that failed before it.
    held_horizon, failed_horizon: the same for the gradient horizon.
    held_relative: r at the longest test length over r at the training length, in the runs
      that held; failed_relative: the same at the first length that failed, in the others.
  """

  runs: int
  points: int
  separation: float
  relative: float
  lyapunov: float
  horizon: float
  held_lyapunov: list[float]
  failed_lyapunov: list[float]
  held_horizon: list[float]
  failed_horizon: list[float]
  held_relative: list[float]
  failed_relative: list[float]


def predictors(result: Result, part: str = "parity") -> Predictors:
  """E2's numbers over the runs of ``part`` (``"parity"`` or ``"cycle"``) that learned."""
  s = result.sizes
  chance = CHANCE[part]
  runs = [r for r in getattr(result, part) if learned(r, s.test_lengths, s.train_length, chance)]
  lengths = list(s.test_lengths)
  beyond = [i for i, n in enumerate(lengths) if n > s.train_length]
  # The reference: r at the longest test length within training.
  ref = max((i for i, n in enumerate(lengths) if n <= s.train_length), default=None)
  acc, sep, rel, lam, hor = [], [], [], [], []
  held_l, failed_l, held_h, failed_h, held_r, failed_r = [], [], [], [], [], []
  for r in runs:
    base = r.separation[ref] if ref is not None else math.nan
    for i in beyond:
      acc.append(r.accuracy[i])
      sep.append(r.separation[i])
      rel.append(r.separation[i] / base)
      lam.append(r.lyapunov)
      hor.append(float(r.horizon))
    fail = fails_at(r, lengths, chance)
    if fail is None:
      held_l.append(r.lyapunov)
      held_h.append(float(r.horizon))
      held_r.append(float(r.separation[-1] / base))
    else:
      failed_l.append(r.lyapunov)
      failed_h.append(float(r.horizon))
      failed_r.append(float(r.separation[lengths.index(fail)] / base))
  return Predictors(
    runs=len(runs),
    points=len(acc),
    separation=rank_correlation(sep, acc),
    relative=rank_correlation(rel, acc),
    lyapunov=rank_correlation(lam, acc),
    horizon=rank_correlation(hor, acc),
    held_lyapunov=held_l,
    failed_lyapunov=failed_l,
    held_horizon=held_h,
    failed_horizon=failed_h,
    held_relative=held_r,
    failed_relative=failed_r,
  )


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool | None:
  a, b = [v for v in a if math.isfinite(v)], [v for v in b if math.isfinite(v)]
  if not a or not b:
    return None
  return max(min(a), min(b)) <= min(max(a), max(b))


def _rho(x: float) -> str:
  return "n/a" if not math.isfinite(x) else f"{x:+.2f}"


def _groups(result: Result, part: str) -> dict[str, list[str]]:
  cells = list(by_cell(getattr(result, part)))
  out: dict[str, list[str]] = {"nonneg": [], "neg": [], "complex": [], "nonlinear": []}
  for c in cells:
    v = VARIANTS[c]
    if not v.linear:
      out["nonlinear"].append(c)
    elif v.range.startswith("complex"):
      out["complex"].append(c)
    elif "−1" in v.range:
      out["neg"].append(c)
    elif v.range != "(0, 2)":
      out["nonneg"].append(c)
  return out


def _summary(runs: list[Run], lengths: Sequence[int], train: int, chance: float) -> str:
  n = len(runs)
  did = sum(learned(r, lengths, train, chance) for r in runs)
  longest = max(lengths)
  held = sum(fails_at(r, lengths, chance) is None for r in runs)
  reach = band([float(holds_to(r, lengths, chance)) for r in runs])
  last = band([float(r.accuracy[-1]) for r in runs])
  return (
    f"learned the training lengths in {did}/{n} runs, held to {longest} in {held}/{n} "
    f"(solved up to length {reach}; accuracy at {longest}: {last})"
  )


def _beyond_mean(runs: list[Run], lengths: Sequence[int], train: int, chance: float) -> float:
  """The best run's mean scaled accuracy over the lengths beyond training (a mean, so that
  one lucky length of a chance-level run does not count)."""
  beyond = [i for i, n in enumerate(lengths) if n > train]
  if not beyond:
    return math.nan
  return max(float(np.mean(scaled(r.accuracy, chance)[beyond])) for r in runs)


def _beyond_best(runs: list[Run], lengths: Sequence[int], train: int, chance: float) -> float:
  beyond = [i for i, n in enumerate(lengths) if n > train]
  if not beyond:
    return math.nan
  return max(float(np.max(scaled(r.accuracy, chance)[beyond])) for r in runs)


def parity_findings(result: Result) -> list[str]:
  """E1: what each range of the transition did on parity, against what theory predicts."""
  s = result.sizes
  lengths, train, chance = s.test_lengths, s.train_length, CHANCE["parity"]
  cells = by_cell(result.parity)
  if not cells:
    return []
  out = []
  groups = _groups(result, "parity")
  nonneg = groups["nonneg"]
  if nonneg:
    best = {c: _beyond_mean(cells[c], lengths, train, chance) for c in nonneg}
    above = [c for c, b in best.items() if b > AT_CHANCE]
    runs = [r for c in nonneg for r in cells[c]]
    did = sum(learned(r, lengths, train, chance) for r in runs)
    verdict = (
      "at chance beyond the training length in every run (best mean scaled accuracy beyond it "
      f"{_format.number(max(best.values()))}), as Theorem 1 of Grazzi et al. predicts for "
      "eigenvalues in [0, 1]"
      if not above
      else "above chance beyond the training length in "
      + ", ".join(f"{label(c)} (mean scaled accuracy {_format.number(best[c])})" for c in above)
      + ": Theorem 1 forbids only arbitrary lengths"
    )
    within = (
      f"; none learned parity even within the training lengths (0/{len(runs)} runs)"
      if did == 0
      else f"; they learned the training lengths in {did}/{len(runs)} runs"
    )
    out.append(
      f"Parity, linear cells with a nonnegative transition ({', '.join(label(c) for c in nonneg)}): "
      f"{verdict}{within}."
    )
  for c in groups["neg"] + groups["complex"] + groups["nonlinear"]:
    out.append(f"Parity, {label(c)}: " + _summary(cells[c], lengths, train, chance) + ".")
  neg = [c for c in groups["neg"] if any(learned(r, lengths, train, chance) for r in cells[c])]
  if neg:
    reach = {c: max(holds_to(r, lengths, chance) for r in cells[c]) for c in neg}
    short = [c for c in neg if reach[c] < max(lengths)]
    out.append(
      "The (−1, 1) range lets a linear cell learn parity ("
      + ", ".join(label(c) for c in neg)
      + ")"
      + (
        f"; it holds to {max(lengths)} in " + ", ".join(label(c) for c in neg if c not in short)
        if len(short) < len(neg)
        else ""
      )
      + (
        f"; {', '.join(f'{label(c)} only to {reach[c]}' for c in short)}: a finite-horizon "
        "solution, since |a| < 1 lets the parity direction decay"
        if short
        else ""
      )
      + "."
    )
  non = groups["nonlinear"]
  if non:
    held = [c for c in non if any(fails_at(r, lengths, chance) is None for r in cells[c])]
    if held:
      out.append(
        f"Nonlinear cells that held parity to {max(lengths)} in at least one run: "
        f"{', '.join(label(c) for c in held)} (Deletang et al.: RNN and LSTM solve parity)."
      )
  return out


def prediction_finding(result: Result) -> list[str]:
  """E2: which of λ_max, the gradient horizon and the state separation predicts where
  accuracy fails, by rank correlation over lengths beyond the training length."""
  p = predictors(result)
  if p.runs == 0 or p.points < 3:
    return [
      "E2: too few runs solved parity at the training lengths to ask what predicts where "
      "accuracy fails beyond them."
    ]
  train = result.sizes.train_length
  corr = {
    "state separation": p.separation,
    f"state separation relative to its value at length {train}": p.relative,
    "λ_max": p.lyapunov,
    "gradient horizon": p.horizon,
  }
  finite = {k: v for k, v in corr.items() if math.isfinite(v)}
  best = max(finite, key=lambda k: abs(finite[k])) if finite else None
  line = (
    f"E2: over the {p.runs} runs that solved parity at the training lengths ({p.points} "
    "(run, length) points beyond them), accuracy's rank correlation is "
    f"{_rho(p.separation)} with the state separation r, {_rho(p.relative)} with r relative to "
    f"its value at length {train}, {_rho(p.lyapunov)} with λ_max and {_rho(p.horizon)} with the "
    "gradient horizon" + (f": the {best} predicts best where accuracy fails" if best else "") + "."
  )
  out = [line]
  if p.held_relative and p.failed_relative:
    apart = max(p.failed_relative) < min(p.held_relative)
    out.append(
      f"Where accuracy failed, r had fallen to {band(p.failed_relative)} of its value at length "
      f"{train}; in the runs that held to {max(result.sizes.test_lengths)} it stayed at "
      f"{band(p.held_relative)}"
      + (": the two ranges do not overlap." if apart else ": the two ranges overlap.")
    )
  lam, hor = (
    _overlap(p.held_lyapunov, p.failed_lyapunov),
    _overlap(p.held_horizon, p.failed_horizon),
  )
  if lam is not None and hor is not None:
    out.append(
      f"Runs that held to {max(result.sizes.test_lengths)} had λ_max {band(p.held_lyapunov)} and "
      f"horizons {band(p.held_horizon)}; runs that failed before it had λ_max "
      f"{band(p.failed_lyapunov)} and horizons {band(p.failed_horizon)}: the λ_max ranges "
      + ("overlap" if lam else "do not overlap")
      + ", the horizon ranges "
      + ("overlap" if hor else "do not overlap")
      + "."
    )
  return out


def cycle_findings(result: Result) -> list[str]:
  """E3: counting mod 5 on real-diagonal, complex and nonlinear cells."""
  s = result.sizes
  lengths, train, chance = s.test_lengths, s.train_length, CHANCE["cycle"]
  cells = by_cell(result.cycle)
  out = []
  for c, runs in cells.items():
    beyond = _beyond_best(runs, lengths, train, chance)
    out.append(
      f"Cycle navigation mod 5, {label(c)}: "
      + _summary(runs, lengths, train, chance)
      + f"; best scaled accuracy beyond the training length {_format.number(beyond)}."
    )
  real = [c for c in cells if VARIANTS[c].linear and not VARIANTS[c].range.startswith("complex")]
  if real:
    best = max(_beyond_best(cells[c], lengths, train, chance) for c in real)
    runs = [r for c in real for r in cells[c]]
    did = sum(learned(r, lengths, train, chance) for r in runs)
    out.append(
      f"Real-diagonal linear cells (learned the training lengths in {did}/{len(runs)} runs) "
      + (
        "stay near chance beyond the training length, as Theorem 2 of Grazzi et al. predicts "
        "(counting mod 5 needs complex eigenvalues)"
        if best <= AT_CHANCE
        else f"reach a scaled accuracy of {_format.number(best)} beyond the training length "
        "(Theorem 2 rules out only arbitrary lengths)"
      )
      + "."
    )
  complex_ = [c for c in cells if VARIANTS[c].range.startswith("complex")]
  if complex_:
    runs = [r for c in complex_ for r in cells[c]]
    did = sum(learned(r, lengths, train, chance) for r in runs)
    if did == 0:
      out.append(
        f"The {', '.join(title(c) for c in complex_)}, whose "
        "complex eigenvalues could count "
        f"mod 5, did not learn it within the training lengths either ({s.cycle_steps} steps): "
        "the contrast of Theorem 2 is not shown at this budget."
      )
    else:
      out.append(
        f"The complex {', '.join(title(c) for c in complex_)} "
        f"learned it in {did}/{len(runs)} "
        "runs, where real-diagonal cells cannot at every length."
      )
  return out


def flip_findings(result: Result) -> list[str]:
  """E4: the positive control, memory with gates in (0, 1)."""
  s = result.sizes
  out = []
  for c, runs in by_cell(tuple(r for r in result.flip_flop if not r.error)).items():
    worst = {k: min(r.per_read[k] for r in runs) for k in runs[0].per_read}
    every = {k: min(r.all_reads[k] for r in runs) for k in runs[0].all_reads}
    out.append(
      f"Flip-flop, {label(c)}, {s.flip_test_length} instructions (trained on {s.flip_length}), "
      "worst run: per-read accuracy "
      + ", ".join(f"{k} {_format.number(v)}" for k, v in worst.items())
      + "; all reads correct "
      + ", ".join(f"{k} {_common.pct(v)}" for k, v in every.items())
      + "."
    )
  flips = by_cell(tuple(r for r in result.flip_flop if not r.error))
  memory = [c for c in flips if VARIANTS[c].linear and "−1" not in VARIANTS[c].range]
  for c in memory:
    tests = list(flips[c][0].per_read)
    ok = [t for t in tests if all(r.per_read[t] >= 0.99 for r in flips[c])]
    if len(ok) == len(tests):
      out.append(
        f"Gates in (0, 1) suffice for memory: {label(c)} read at least 99% of the bits right on "
        "every test set, where the same range fails parity."
      )
    else:
      missed = [t for t in tests if t not in ok]
      out.append(
        f"{label(c)} holds a bit on "
        + (", ".join(ok) if ok else "no test set")
        + " (at least 99% of reads right) but not on "
        + ", ".join(f"{t} ({_format.number(min(r.per_read[t] for r in flips[c]))})" for t in missed)
        + ": a keep coefficient below 1 lets a held bit decay over a long hold"
        + (
          f", where {', '.join(label(n) for n in flips if not VARIANTS[n].linear and all(min(r.per_read.values()) >= 0.99 for r in flips[n]))} "
          "read at least 99% right on every set"
          if any(
            not VARIANTS[n].linear and all(min(r.per_read.values()) >= 0.99 for r in flips[n])
            for n in flips
          )
          else ""
        )
        + "."
      )
  return out


def stability_findings(result: Result) -> list[str]:
  """E5: the keep coefficient in (0, 2) against (0, 1) and (−1, 1)."""
  runs = [r for r in (*result.parity, *result.stability) if r.cell.startswith("min_gru")]
  out = []
  for c, rs in by_cell(tuple(runs)).items():
    out.append(
      f"minGRU with keep coefficient in {VARIANTS[c].range}: diverged in "
      f"{sum(r.diverged for r in rs)}/{len(rs)} runs, λ_max {band([r.lyapunov for r in rs])}, "
      f"median training gradient norm {band([r.grad_norm for r in rs])}, gradient norm at "
      f"length {result.sizes.probe_length} {band([r.probe_grad_norm for r in rs])}."
    )
  wide = [r for r in runs if VARIANTS[r.cell].range == "(0, 2)"]
  if wide:
    expanding = [r for r in wide if math.isfinite(r.lyapunov) and r.lyapunov > 0]
    overflow = [r for r in wide if not math.isfinite(r.probe_grad_norm)]
    out.append(
      (
        f"A keep coefficient in (0, 2) expands: λ_max > 0 in {len(expanding)}/{len(wide)} runs"
        + (
          f", and the gradient at length {result.sizes.probe_length} overflowed in "
          f"{len(overflow)}/{len(wide)}"
          if overflow
          else ""
        )
        + ": the seed's (0, 1) bound matters for stability, and (−1, 1) keeps it (|a| < 1)"
        if expanding
        else "The (0, 2) range did not expand at these sizes (λ_max ≤ 0 in every run)"
      )
      + "."
    )
  return out


def errors(result: Result) -> list[str]:
  """One sentence per run that raised instead of finishing."""
  return [
    f"{label(r.cell)} (seed {r.seed}, lr {r.learning_rate:g}) did not finish: {r.error}"
    for r in (*result.parity, *result.cycle, *result.flip_flop, *result.stability)
    if r.error
  ]


def findings(result: Result) -> list[str]:
  """Every part's sentences, chosen by the measured values (nothing is a fixed conclusion)."""
  return [
    *errors(result),
    *parity_findings(result),
    *(prediction_finding(result) if result.parity else []),
    *cycle_findings(result),
    *flip_findings(result),
    *stability_findings(result),
  ]
