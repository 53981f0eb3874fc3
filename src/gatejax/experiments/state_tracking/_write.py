"""Writing the state-tracking experiment: its tables, the report's section, JSON (both ways), figures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from gatejax import _format
from gatejax.experiments import _common
from gatejax.experiments.state_tracking._findings import (
  AGREE,
  CHANCE,
  fails_at,
  findings,
  learned,
  scaled,
)
from gatejax.experiments.state_tracking._measure import (
  FULL,
  VARIANTS,
  FlipRun,
  Result,
  Run,
  Sizes,
  by_cell,
  label,
)

#: The section's title in the report.
TITLE = "State tracking and the range of a gate"


class Published(NamedTuple):
  """A published number and the gatejax runs it is compared with.

  Attributes:
    source: the paper and its table.
    task: ``"parity"``, ``"cycle"`` or ``"flip_flop"``.
    model: the paper's model.
    cell: the gatejax variant compared.
    value: the published number (scaled accuracy, or accuracy, as ``metric`` says).
    metric: ``"scaled"`` (Grazzi: scaled accuracy averaged over lengths 40 to 256, best of
      3 runs), ``"accuracy"`` (Deletang: accuracy averaged over the lengths beyond training,
      the max over seeds and learning rates) or ``"per read"`` (Liu et al.: every read of
      every run right; ours is the worst run's worst test set).
    setup: the paper's model size and training, to say why numbers differ.
  """

  source: str
  task: str
  model: str
  cell: str
  value: float
  metric: str
  setup: str


_GRAZZI = "Grazzi et al. 2025, Table 3"
_GRAZZI_SETUP = "2 layers, width 128, up to 20k steps"
_DELETANG = "Deletang et al. 2023, Table 2"
_DELETANG_SETUP = "hidden 256, 1M steps, max over 10 seeds × 3 rates"
#: The published numbers the experiment is compared with (from the research note's sources).
PUBLISHED = (
  Published(_GRAZZI, "parity", "Mamba [0,1]", "s6", 0.000, "scaled", _GRAZZI_SETUP),
  Published(_GRAZZI, "parity", "Mamba [−1,1]", "s6/neg", 1.000, "scaled", _GRAZZI_SETUP),
  Published(_GRAZZI, "parity", "DeltaNet [0,1]", "delta_net", 0.017, "scaled", _GRAZZI_SETUP),
  Published(_GRAZZI, "parity", "DeltaNet [−1,1]", "delta_net/neg", 1.000, "scaled", _GRAZZI_SETUP),
  Published(_GRAZZI, "parity", "mLSTM", "mlstm", 0.087, "scaled", _GRAZZI_SETUP),
  Published(_GRAZZI, "parity", "sLSTM", "slstm", 1.000, "scaled", _GRAZZI_SETUP),
  Published(_DELETANG, "parity", "RNN", "rnn", 1.000, "accuracy", _DELETANG_SETUP),
  Published(_DELETANG, "parity", "LSTM", "lstm", 1.000, "accuracy", _DELETANG_SETUP),
  Published(_DELETANG, "cycle", "RNN", "rnn", 1.000, "accuracy", _DELETANG_SETUP),
  Published(_DELETANG, "cycle", "LSTM", "lstm", 1.000, "accuracy", _DELETANG_SETUP),
  Published(
    "Liu et al. 2023 (flip-flop)",
    "flip_flop",
    "LSTM",
    "lstm",
    1.000,
    "per read",
    "1 layer, hidden 128, 100/100 runs with no read error",
  ),
)


def ours(result: Result, p: Published) -> float:
  """Our number measured the way the paper's is (``nan`` when the cell was not run)."""
  s = result.sizes
  runs = by_cell(getattr(result, p.task)).get(p.cell, [])
  if not runs:
    return math.nan
  if p.task == "flip_flop":
    return min(min(r.per_read.values()) for r in runs)
  chance = CHANCE[p.task]
  if p.metric == "scaled":
    pick = [i for i, n in enumerate(s.test_lengths) if s.train_length <= n <= 256]
    return max(float(np.mean(scaled(r.accuracy, chance)[pick])) for r in runs) if pick else math.nan
  pick = [i for i, n in enumerate(s.test_lengths) if n > s.train_length]
  return max(float(np.mean(r.accuracy[pick])) for r in runs) if pick else math.nan


def _why(result: Result, p: Published, value: float) -> str:
  s = result.sizes
  if p.task == "flip_flop":
    return (
      "agrees" if abs(value - p.value) <= AGREE else f"lower: fewer steps than theirs ({p.setup})"
    )
  runs = by_cell(getattr(result, p.task))[p.cell]
  chance, lengths = CHANCE[p.task], s.test_lengths
  steps = s.parity_steps if p.task == "parity" else s.cycle_steps
  if abs(value - p.value) <= AGREE:
    return "agrees"
  if value > p.value:
    return "higher: accuracy holds a little beyond the training length before it falls"
  if not any(learned(r, lengths, s.train_length, chance) for r in runs):
    return (
      f"lower: no run learned the training lengths in {steps} steps at hidden {s.hidden} "
      f"(theirs: {p.setup})"
    )
  reach = [fails_at(r, lengths, chance) for r in runs]
  first = max((n for n in reach if n is not None), default=None)
  return (
    f"lower: learned the training lengths but fails from length {first} (a finite-horizon "
    f"solution at hidden {s.hidden} and {steps} steps; theirs: {p.setup})"
  )


def literature_table(result: Result) -> str:
  """The published numbers beside ours, measured the same way, and where they differ, why."""
  rows = [
    "| source | task | their model | theirs | gatejax | ours | reading |",
    "|---|---|---|---|---|---|---|",
  ]
  metric = {
    "scaled": "scaled acc. 40–256, best run",
    "accuracy": "acc. beyond 40, best run",
    "per read": "per-read acc., worst run",
  }
  for p in PUBLISHED:
    value = ours(result, p)
    if not math.isfinite(value):
      continue
    rows.append(
      f"| {p.source} | {p.task.replace('_', '-')} ({metric[p.metric]}) | {p.model} "
      f"| {p.value:.3f} | {label(p.cell)} | {value:.3f} | {_why(result, p, value)} |"
    )
  return "\n".join(rows) if len(rows) > 2 else ""


def _cell_row(runs: list[Run]) -> list[str]:
  acc = np.stack([r.accuracy for r in runs])
  return [
    f"{np.mean(col):.2f}" + (f" ({np.min(col):.2f}–{np.max(col):.2f})" if len(runs) > 1 else "")
    for col in acc.T
  ]


def accuracy_table(result: Result, part: str = "parity") -> str:
  """Accuracy at each test length, mean (min–max) over the runs of each cell of ``part``."""
  s = result.sizes
  cells = by_cell(getattr(result, part))
  if not cells:
    return ""
  chance = CHANCE[part]
  head = " | ".join(f"acc. @{n}" for n in s.test_lengths)
  rows = [
    f"| cell | transition | runs | learned | {head} |",
    "|---|---|---|---|" + "---|" * len(s.test_lengths),
  ]
  for c, runs in cells.items():
    did = sum(learned(r, s.test_lengths, s.train_length, chance) for r in runs)
    rows.append(
      f"| {label(c)} | {VARIANTS[c].range} | {len(runs)} | {did}/{len(runs)} | "
      + " | ".join(_cell_row(runs))
      + " |"
    )
  return "\n".join(rows)


def runs_table(result: Result, part: str = "parity") -> str:
  """Every run of ``part``: accuracy and state separation by length, λ_max, horizon (E2)."""
  s = result.sizes
  runs = getattr(result, part)
  if not runs:
    return ""
  lengths = s.test_lengths
  rows = [
    "| cell | lr | seed | final loss | "
    + " | ".join(f"acc. / r @{n}" for n in lengths)
    + f" | λ_max | horizon (T = {s.probe_length}) |",
    "|---|---|---|---|" + "---|" * len(lengths) + "---|---|",
  ]
  for r in runs:
    cells = [
      f"{a:.2f} / {_format.number(q)}" for a, q in zip(r.accuracy, r.separation, strict=True)
    ]
    rows.append(
      f"| {label(r.cell)} | {r.learning_rate:g} | {r.seed} | "
      + ("error" if r.error else "diverged" if r.diverged else _format.number(r.final_loss))
      + " | "
      + " | ".join(cells)
      + f" | {_common.signed(r.lyapunov)} | {r.horizon} |"
    )
  return "\n".join(rows)


def flip_table(result: Result) -> str:
  """E4: per-read accuracy and all-reads-correct on each test set, every run."""
  if not result.flip_flop:
    return ""
  tests = list(result.flip_flop[0].per_read)
  rows = [
    "| cell | lr | seed | "
    + " | ".join(f"{t}: per read / all reads" for t in tests)
    + " | λ_max |",
    "|---|---|---|" + "---|" * len(tests) + "---|",
  ]
  for r in result.flip_flop:
    rows.append(
      f"| {label(r.cell)} | {r.learning_rate:g} | {r.seed} | "
      + " | ".join(f"{r.per_read[t]:.3f} / {_common.pct(r.all_reads[t])}" for t in tests)
      + f" | {_common.signed(r.lyapunov)} |"
    )
  return "\n".join(rows)


def stability_table(result: Result) -> str:
  """E5: minGRU's keep coefficient in (0, 1), (−1, 1) and (0, 2): divergence, λ, gradients."""
  runs = [r for r in (*result.parity, *result.stability) if r.cell.startswith("min_gru")]
  if not runs:
    return ""
  rows = [
    "| keep coefficient | lr | seed | diverged | λ_max | median training ‖g‖ "
    f"| ‖g‖ at T = {result.sizes.probe_length} |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in runs:
    rows.append(
      f"| {VARIANTS[r.cell].range} | {r.learning_rate:g} | {r.seed} | {'yes' if r.diverged else 'no'} "
      f"| {_common.signed(r.lyapunov)} | {_format.number(r.grad_norm)} "
      f"| {_format.number(r.probe_grad_norm)} |"
    )
  return "\n".join(rows)


def _sizes_line(s: Sizes) -> str:
  reduced = s != FULL
  return (
    (
      "**Reduced version** (the default `gatejax report`: a few cells, one seed, fewer steps; "
      "`gatejax report --full` runs every cell of the experiment). "
      if reduced
      else ""
    )
    + f"One layer, hidden {s.hidden}, linear readout, Adam (learning rates "
    f"{', '.join(f'{lr:g}' for lr in s.learning_rates)}, clipping at {s.clip_norm}), batch "
    f"{s.batch}, {s.seeds} seed(s) per rate; every run is reported. Parity and cycle "
    f"navigation (mod 5) train on lengths 1–{s.train_length} ({s.parity_steps} and "
    f"{s.cycle_steps} steps) and are tested at {', '.join(map(str, s.test_lengths))} "
    f"({s.eval_batch} sequences each); flip-flop trains on {s.flip_length} instructions "
    f"(p_ignore 0.8, {s.flip_steps} steps) and is tested at {s.flip_test_length}. λ_max, the "
    f"gradient horizon (1% of the peak) and the gradient norm on {s.probe_batch} sequences of "
    f"length {s.probe_length}; the state separation r is the distance between the label "
    "classes' mean final output over the within-class spread, on the test sequences."
  )


def to_markdown(result: Result, figures: Mapping[str, str] | None = None) -> str:
  """What was measured, the tables, the findings, the comparison with the literature and
  the figures given (role -> file)."""
  s, figures = result.sizes, figures or {}
  parts = [_sizes_line(s)]
  if result.parity:
    parts += [
      "**E1, parity: accuracy by length** (mean, min–max over runs)",
      accuracy_table(result),
    ]
    parts += [
      "**E2, every parity run**: accuracy / state separation r by length",
      runs_table(result),
    ]
  if result.cycle:
    parts += ["**E3, cycle navigation mod 5**", accuracy_table(result, "cycle")]
  if result.flip_flop:
    parts += ["**E4, flip-flop, the positive control**", flip_table(result)]
  if result.stability:
    parts += [
      "**E5, the range of minGRU's keep coefficient and stability**",
      stability_table(result),
    ]
  parts.append(_common.bullets(findings(result)))
  table = literature_table(result)
  if table:
    parts += ["**Beside the published numbers**", table]
  for role, alt in (
    ("parity", "parity accuracy against length"),
    ("separation", "state separation against length"),
    ("cycle", "cycle navigation accuracy against length"),
  ):
    if role in figures:
      parts.append(f"![{alt}]({figures[role]})")
  return "\n\n".join(p for p in parts if p)


def _run_json(r: Run) -> dict[str, Any]:
  return _format.jsonable(r._asdict())


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as ``"nan"``, ``"inf"``), with the
  findings and the literature comparison; :func:`from_json` reads it back."""
  return {
    "sizes": _format.jsonable(result.sizes._asdict()),
    "seconds": _format.jsonable(result.seconds),
    "parity": [_run_json(r) for r in result.parity],
    "cycle": [_run_json(r) for r in result.cycle],
    "flip_flop": [_format.jsonable(r._asdict()) for r in result.flip_flop],
    "stability": [_run_json(r) for r in result.stability],
    "findings": findings(result),
    "literature": [
      {**_format.jsonable(p._asdict()), "ours": _format.jsonable(ours(result, p))}
      for p in PUBLISHED
    ],
  }


def _float(x: Any) -> float:
  return _format.read_float(x)


def _run(d: Mapping[str, Any]) -> Run:
  return Run(
    cell=d["cell"],
    seed=int(d["seed"]),
    learning_rate=_float(d["learning_rate"]),
    accuracy=np.array([_float(x) for x in d["accuracy"]], np.float64),
    separation=np.array([_float(x) for x in d["separation"]], np.float64),
    lyapunov=_float(d["lyapunov"]),
    horizon=int(d["horizon"]),
    grad_norm=_float(d["grad_norm"]),
    probe_grad_norm=_float(d["probe_grad_norm"]),
    final_loss=_float(d["final_loss"]),
    diverged=bool(d["diverged"]),
    seconds=_float(d["seconds"]),
    error=str(d.get("error", "")),
  )


def _flip(d: Mapping[str, Any]) -> FlipRun:
  return FlipRun(
    cell=d["cell"],
    seed=int(d["seed"]),
    learning_rate=_float(d["learning_rate"]),
    per_read={k: _float(v) for k, v in d["per_read"].items()},
    all_reads={k: _float(v) for k, v in d["all_reads"].items()},
    lyapunov=_float(d["lyapunov"]),
    final_loss=_float(d["final_loss"]),
    diverged=bool(d["diverged"]),
    seconds=_float(d["seconds"]),
    error=str(d.get("error", "")),
  )


def from_json(document: Mapping[str, Any]) -> Result:
  """The :class:`Result` that :func:`to_json` wrote (findings are recomputed, not read)."""
  fields = dict(document["sizes"])
  for name, value in Sizes._field_defaults.items():
    if isinstance(value, tuple):
      fields[name] = tuple(fields[name])
  return Result(
    sizes=Sizes(**fields),
    parity=tuple(_run(d) for d in document["parity"]),
    cycle=tuple(_run(d) for d in document["cycle"]),
    flip_flop=tuple(_flip(d) for d in document["flip_flop"]),
    stability=tuple(_run(d) for d in document["stability"]),
    seconds=_float(document.get("seconds", "nan")),
  )


def _by_length(ax: Any, result: Result, part: str, value: str, *, log: bool) -> None:
  from gatejax.plots import _pyplot

  s = result.sizes
  colors = _pyplot().get_cmap("tab20").colors  # up to 16 cells: one colour each
  for k, (c, runs) in enumerate(by_cell(getattr(result, part)).items()):
    curves = np.stack([getattr(r, value) for r in runs])
    line = "-" if not VARIANTS[c].linear else ("--" if "−1" in VARIANTS[c].range else ":")
    mean = np.exp(np.mean(np.log(np.clip(curves, 1e-12, None)), axis=0)) if log else curves.mean(0)
    ax.plot(
      s.test_lengths, mean, line, marker="o", markersize=3, label=label(c), color=colors[k % 20]
    )
  ax.axvline(s.train_length, color="grey", linewidth=0.8)
  ax.set_xscale("log")
  ax.set_xlabel("sequence length (grey: longest training length)")
  if log:
    ax.set_yscale("log")


def figures(result: Result) -> dict[str, Any]:
  """``"parity"``: accuracy against length per cell (mean over runs; solid nonlinear, dashed
  (−1, 1), dotted nonnegative linear); ``"separation"``: the state separation against length
  (geometric mean over runs); ``"cycle"``: cycle navigation accuracy, when it ran."""
  from gatejax.plots import _pyplot

  plt = _pyplot()
  out = {}
  for part, role, title in (
    ("parity", "parity", "Parity: accuracy against length"),
    ("cycle", "cycle", "Cycle navigation mod 5: accuracy against length"),
  ):
    if getattr(result, part):
      fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
      _by_length(ax, result, part, "accuracy", log=False)
      ax.axhline(CHANCE[part], color="black", linestyle="--", linewidth=0.8)
      ax.set_ylabel("accuracy (dashed black: chance)")
      ax.set_title(title)
      ax.legend(fontsize="x-small", ncol=2)
      out[role] = fig
  if result.parity:
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    _by_length(ax, result, "parity", "separation", log=True)
    ax.set_ylabel("state separation r (class-mean distance / spread)")
    ax.set_title("Parity: how far apart the two labels' final states stay")
    ax.legend(fontsize="x-small", ncol=2)
    out["separation"] = fig
  return out
