r"""Learning changes the horizon: how far back the gradient reaches, before and after training.

At initialisation every cell's gradient is dominated by the last steps: the seed's
"远距离的梯度消失" (the far gradient vanishes, the near one does not). Whether a cell can
*learn* a long dependency depends on whether training can open a path to the far past.
This experiment trains an Elman RNN, a GRU and an LSTM on the adding problem
(:func:`gatejax.tasks.adding`) at a length where the RNN fails, and measures on one fixed
probe batch, with the same loss the training minimises, before and after training:

* the per-step contribution norms :math:`\lVert g_t \rVert` of
  :func:`gatejax.analysis.contribution_norms` (:math:`\sum_t g_t = \partial L/\partial\theta`);
* the **horizon** (:func:`gatejax.analysis.gradient_horizon`, 1% of the peak): how many of
  the last steps still contribute;
* the **far share** (:func:`gatejax.analysis.far_share` at ``T // 2``): the share of the
  gradient signal that comes from the first half of the sequence, where the adding
  problem hides its first marked number;
* the Jacobian norms :math:`\lVert \partial c_T / \partial c_k \rVert_2`
  (:func:`gatejax.analysis.jacobian_norms`), median over the batch.

Example:
  >>> from gatejax.experiments import horizon
  >>> sizes = horizon.QUICK_SIZES._replace(steps=20)
  >>> sizes.time, sizes.hidden
  (20, 8)
  >>> horizon.horizon_cell("lstm", sizes.hidden).name
  'gj.lstm(8)'

  The whole experiment: ``result = horizon.run_horizon(sizes)``, then
  ``print(horizon.to_markdown(result))``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

import gatejax as gj
from gatejax import _format, analysis, tasks
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.experiments import gates

__all__ = [
  "DEFAULT_SIZES",
  "KINDS",
  "QUICK_SIZES",
  "HorizonResult",
  "HorizonRun",
  "HorizonSizes",
  "findings",
  "horizon_cell",
  "horizon_table",
  "probe_model",
  "run_horizon",
  "to_json",
  "to_markdown",
]

#: The cells trained, a plain RNN and the two classic gated cells.
KINDS = ("rnn", "gru", "lstm")


class HorizonSizes(NamedTuple):
  """Sizes of the experiment.

  Attributes:
    time: length of the adding problem.
    hidden: hidden units of every cell.
    batch: sequences per training step.
    steps: optimiser steps per cell.
    learning_rate: Adam's learning rate.
    clip_norm: gradient clipping by global norm.
    probe_batch: sequences of the fixed probe batch the curves are measured on.
    seed: the seed of every run (parameters, data, probe).
  """

  time: int = 100
  hidden: int = 32
  batch: int = 64
  steps: int = 600
  learning_rate: float = 1e-2
  clip_norm: float = 1.0
  probe_batch: int = 64
  seed: int = 0


#: The sizes of the full report.
DEFAULT_SIZES = HorizonSizes()
#: Tiny sizes for a smoke run.
QUICK_SIZES = HorizonSizes(time=20, hidden=8, batch=16, steps=40, probe_batch=8)


class HorizonRun(NamedTuple):
  """One cell, before and after training.

  Attributes:
    history: the :class:`gatejax.train.History` of the run.
    before, after: ``(time,)`` contribution norms :math:`\\lVert g_t \\rVert`, step ``t``
      first (``[::-1][d]`` is ``d`` steps back).
    jacobian_before, jacobian_after: ``(time,)`` median over the probe batch of
      :math:`\\lVert \\partial c_T / \\partial c_k \\rVert_2`, ``k = 0 .. T-1``.
    horizon_before, horizon_after: :func:`gatejax.analysis.gradient_horizon` of the
      contribution norms (1% of the peak), in steps.
    far_before, far_after: the share of the contribution from ``T // 2`` or more steps back.
    loss_before, loss_after: the loss on the probe batch.
    final_eval: the last evaluation loss of :func:`gatejax.train.fit` (``nan`` if diverged).
    params: the trained :class:`gatejax.train.ModelParams`, so that a later experiment (the
      dynamics of :mod:`gatejax.experiments.dynamics`) measures the same model instead of
      training it again.
  """

  history: Any
  before: np.ndarray
  after: np.ndarray
  jacobian_before: np.ndarray
  jacobian_after: np.ndarray
  horizon_before: int
  horizon_after: int
  far_before: float
  far_after: float
  loss_before: float
  loss_after: float
  final_eval: float
  params: Any = None


class HorizonResult(NamedTuple):
  """Every cell's :class:`HorizonRun`, keyed ``"RNN"``, ``"GRU"``, ``"LSTM"``."""

  sizes: HorizonSizes
  runs: dict[str, HorizonRun]
  baseline: float


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def horizon_cell(kind: str, hidden: int) -> Cell:
  """The default cell of a kind (tanh RNN, sigmoid-gated GRU and LSTM); cached.

  The gated cells are :func:`gatejax.experiments.gates.gate_cell`'s sigmoid cells, the
  same values, so a training step compiled for one experiment serves the other.
  """
  if kind == "rnn":
    return gj.rnn(hidden)
  if kind in ("gru", "lstm"):
    return gates.gate_cell(kind, "sigmoid", hidden)
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


@bounded_jit(static_argnames=("cell", "task"))
def probe_model(cell: Cell, task: tasks.Task, params: Any, batch: tasks.Batch) -> dict[str, Array]:
  """Contribution norms, Jacobian norms and loss of a trained model on one batch.

  The loss is the task's own, read through the model's readout, so the contributions
  are those of the gradient that training follows. One compilation per cell and task:
  the loss closes over the readout and targets inside this jitted function.

  Args:
    cell: the recurrent cell.
    task: a ``"last"``-readout task (the adding problem).
    params: :class:`gatejax.train.ModelParams`.
    batch: the probe batch.

  Returns:
    ``{"contributions": (T,), "jacobian": (T,), "loss": ()}``.
  """
  readout = params.readout

  def loss(ys: Array, carry: Any) -> Array:
    last = ys[-1] @ readout.w + jnp.reshape(readout.b, (1, -1))
    return task.loss(last, batch)

  contributions = analysis.contribution_norms(cell, params.cell, batch.xs, loss)
  jacobian = analysis.jacobian_norms(cell, params.cell, batch.xs)
  _, ys = gj.scan(cell, params.cell, batch.xs)
  return {
    "contributions": contributions,
    "jacobian": jnp.median(jacobian, axis=-1),
    "loss": loss(ys, None),
  }


def _summaries(probe: dict[str, np.ndarray]) -> tuple[int, float]:
  norms = jnp.asarray(probe["contributions"])
  horizon = int(analysis.gradient_horizon(norms, fraction=0.01))
  far = float(analysis.far_share(norms, norms.shape[0] // 2))
  return horizon, far


def run_horizon(
  sizes: HorizonSizes = DEFAULT_SIZES,
  *,
  kinds: Sequence[str] = KINDS,
  progress: Callable[[str], None] | None = None,
  train_progress: bool = False,
) -> HorizonResult:
  """Train each cell on the adding problem and measure its gradient before and after.

  Every cell starts from its own default initialisation (:func:`gatejax.rnn`,
  :func:`gatejax.gru`, :func:`gatejax.lstm`) and trains with :func:`gatejax.train.fit`
  from the same key, so they see the same batches in the same order.

  Args:
    sizes: a :class:`HorizonSizes`.
    kinds: cells from ``("rnn", "gru", "lstm")``.
    progress: called with a one-line message as each cell starts.
    train_progress: show :func:`gatejax.train.fit`'s progress bar.

  Returns:
    A :class:`HorizonResult`.
  """
  from gatejax import train

  if not isinstance(sizes, HorizonSizes):
    raise TypeError(f"sizes must be a HorizonSizes, got {type(sizes).__name__}")
  say = progress or (lambda message: None)
  task = tasks.adding(sizes.time)
  key = jax.random.key(sizes.seed)
  probe = task.sample(jax.random.fold_in(key, 7), sizes.probe_batch)
  runs: dict[str, HorizonRun] = {}
  for kind in kinds:
    cell = horizon_cell(kind, sizes.hidden)
    name = kind.upper()
    say(f"horizon: {name}: {sizes.steps} steps on the adding problem, T = {sizes.time}")
    # fit with zero steps returns the exact initial state of the run below.
    initial = train.fit(cell, task, key=key, steps=0, progress=False).params
    before = jax.device_get(probe_model(cell, task, initial, probe))
    result = train.fit(
      cell,
      task,
      key=key,
      steps=sizes.steps,
      batch_size=sizes.batch,
      learning_rate=sizes.learning_rate,
      clip_norm=sizes.clip_norm,
      eval_every=max(1, sizes.steps // 10),
      progress=train_progress,
    )
    after = jax.device_get(probe_model(cell, task, result.params, probe))
    h_before, f_before = _summaries(before)
    h_after, f_after = _summaries(after)
    history = result.history
    runs[name] = HorizonRun(
      history=history,
      before=np.asarray(before["contributions"], np.float64),
      after=np.asarray(after["contributions"], np.float64),
      jacobian_before=np.asarray(before["jacobian"], np.float64),
      jacobian_after=np.asarray(after["jacobian"], np.float64),
      horizon_before=h_before,
      horizon_after=h_after,
      far_before=f_before,
      far_after=f_after,
      loss_before=float(before["loss"]),
      loss_after=float(after["loss"]),
      final_eval=math.nan if history.diverged else float(history.eval_loss[-1]),
      params=result.params,
    )
  return HorizonResult(sizes=sizes, runs=runs, baseline=task.baseline)


# ---------------------------------------------------------------------------
# Tables, findings and JSON
# ---------------------------------------------------------------------------


def _jacobian_at(curve: np.ndarray, d: int) -> float:
  return float(curve[curve.shape[0] - d])


def horizon_table(result: HorizonResult) -> str:
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


def _learned(run: HorizonRun, baseline: float) -> bool:
  """Well under the baseline: a tenth of it, far below what ignoring the marks can reach."""
  return math.isfinite(run.final_eval) and run.final_eval < 0.1 * baseline


def findings(result: HorizonResult) -> list[str]:
  """Sentences chosen by the measured values (nothing is a fixed conclusion)."""
  out = []
  T = result.sizes.time
  for name, r in result.runs.items():
    ratio = r.final_eval / result.baseline if math.isfinite(r.final_eval) else math.nan
    if _learned(r, result.baseline):
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
  learned = [n for n, r in result.runs.items() if _learned(r, result.baseline)]
  failed = [n for n, r in result.runs.items() if not _learned(r, result.baseline)]
  if learned and failed:
    grew = [n for n in learned if result.runs[n].far_after > result.runs[n].far_before]
    out.append(
      f"{', '.join(learned)} learned and {', '.join(failed)} did not"
      + (
        f"; in {', '.join(grew)} training moved gradient signal to the far half: learning "
        "changed the horizon."
        if grew
        else ", although no cell's far share grew."
      )
    )
  return out


def to_markdown(result: HorizonResult) -> str:
  """The table and the findings."""
  return horizon_table(result) + "\n\n" + "\n".join(f"- {s}" for s in findings(result))


def to_json(result: HorizonResult) -> dict[str, Any]:
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
