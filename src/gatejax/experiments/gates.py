r"""The gate experiment: sigmoid, hard sigmoid and ReLU as the gate function of GRU and LSTM.

The seed article argues in words that a gate must be a sigmoid: its values lie in
:math:`(0, 1)`, so a gate is a soft switch that keeps everything at 1 and discards
everything at 0, and it is differentiable everywhere; a ReLU "suppresses one side", so a
gate unit pushed below zero stops responding. This module turns that into measurements,
for one cell at a time with only ``gate_fn`` changed (everything else, initialisation
included, stays as :func:`gatejax.gru` and :func:`gatejax.lstm` make it):

* ``sigmoid``: :math:`\sigma(a) = 1 / (1 + e^{-a})`, the standard gate;
* ``hard_sigmoid``: :func:`jax.nn.hard_sigmoid`, :math:`\mathrm{relu6}(a + 3) / 6 =
  \mathrm{clip}(a / 6 + 1/2, 0, 1)` (PyTorch's ``Hardsigmoid``): bounded to
  :math:`[0, 1]` like the sigmoid but piecewise linear, exactly 0 or 1 (zero slope) for
  :math:`|a| \ge 3`. It separates "bounded" from "smooth";
* ``relu``: :math:`\max(a, 0)`: exactly 0 for :math:`a < 0` (the seed's one-sided
  suppression) and *unbounded* above, so a keep gate (GRU ``z``, LSTM ``f``) can exceed 1
  and multiply the carry up instead of passing it on.

Three parts, each over several seeds:

(a) **at initialisation**, along a sequence: the size of the hidden state (and the LSTM's
    memory cell) per step, and per gate the fraction of values that are dead (exactly 0),
    shut (< 0.1), open (in (0.9, 1]) and above 1, plus the fraction of units dead along
    the whole batch;
(b) **the carry path**: :func:`gatejax.analysis.jacobian_norms`,
    :math:`\lVert \partial c_T / \partial c_k \rVert_2` against the distance
    :math:`T - k`, and its fitted per-step factor (:func:`gatejax.analysis.decay_rate`):
    below 1 the far past fades, above 1 it is amplified (exploding gradients);
(c) **training** on the adding problem (:func:`gatejax.tasks.adding`) with
    :func:`gatejax.train.fit`: the final error against the always-predict-1 baseline and
    the fraction of runs that diverge.

(a) and (b) run on two kinds of input with the same parameters: the adding problem's own
inputs (values in [0, 1], two marks: what (c) trains on) and unit Gaussian inputs of the
same size, a stress test of larger pre-activations.

Example:
  >>> import jax.numpy as jnp
  >>> from gatejax.experiments import gates
  >>> cell = gates.gate_cell("gru", "relu", 4)         # gj.gru(4, gate_fn=jax.nn.relu)
  >>> params = cell.init(jax.random.key(0), 2)
  >>> _, _, g = gj.scan_with_gates(cell, params, jnp.ones((3, 2)))
  >>> bool((g.z >= 0).all())                           # >= 0, but not bounded by 1
  True

  The whole experiment: ``gates.run_gates(gates.QUICK_SIZES)``, then
  ``print(gates.to_markdown(result))``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import gatejax as gj
from gatejax import _format, analysis, protocol, tasks
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.run import loop

__all__ = [
  "DEFAULT_SIZES",
  "GATE_FUNCTIONS",
  "KINDS",
  "PROBES",
  "QUICK_SIZES",
  "Activity",
  "GateExperiment",
  "GateFractions",
  "GateSizes",
  "JacobianSummary",
  "TrainingSummary",
  "activity_table",
  "findings",
  "gate_cell",
  "jacobian_table",
  "label",
  "run_gates",
  "to_json",
  "to_markdown",
  "trained_activity_table",
  "training_table",
]

#: The gate functions compared, by name (the only thing that differs between the runs).
GATE_FUNCTIONS: dict[str, Callable[[Array], Array]] = {
  "sigmoid": jax.nn.sigmoid,
  "hard_sigmoid": jax.nn.hard_sigmoid,
  "relu": jax.nn.relu,
}
#: The gated cells whose gate function is swapped.
KINDS = ("gru", "lstm")
#: The inputs of parts (a) and (b), the adding problem's and unit Gaussians.
PROBES = ("adding", "gaussian")
# Values a histogram keeps per gate and configuration: enough for a smooth outline.
_SAMPLES = 20_000


class GateSizes(NamedTuple):
  """Sizes of the gate experiment.

  Attributes:
    time: sequence length of parts (a) and (b).
    hidden: hidden units of every cell.
    batch: sequences per seed in (a).
    jacobian_batch: the first this many of them also go through (b) (one SVD per step,
      sequence and seed: the costly part).
    seeds: independent initialisations (and training runs) per configuration.
    train_time: length of the adding problem in (c).
    train_steps: optimiser steps per training run.
    train_batch: sequences per training step.
    learning_rate: Adam's learning rate.
    clip_norm: gradient clipping by global norm (Pascanu et al. 2013).
  """

  time: int = 100
  hidden: int = 32
  batch: int = 32
  jacobian_batch: int = 8
  seeds: int = 3
  train_time: int = 50
  train_steps: int = 400
  train_batch: int = 64
  learning_rate: float = 3e-3
  clip_norm: float = 1.0


#: The sizes of the full report.
DEFAULT_SIZES = GateSizes()
#: Tiny sizes for a smoke run. Its training sizes equal those of
#: :data:`gatejax.experiments.horizon.QUICK_SIZES`, so that a quick report compiles each
#: sigmoid cell's training step once for both experiments.
QUICK_SIZES = GateSizes(
  time=20,
  hidden=8,
  batch=4,
  jacobian_batch=4,
  seeds=2,
  train_time=20,
  train_steps=40,
  train_batch=16,
  learning_rate=1e-2,
)


class GateFractions(NamedTuple):
  """What one gate's values do, as fractions of all values (steps × sequences × units).

  Attributes:
    mean: the mean gate value.
    dead: exactly 0 (passes nothing; for ReLU and hard sigmoid also no gradient).
    shut: below 0.1 (dead included).
    open: in (0.9, 1].
    above_one: above 1: the gate amplifies what it multiplies (only ReLU can).
    dead_units: units whose gate is exactly 0 at every step of every sequence.
  """

  mean: float
  dead: float
  shut: float
  open: float
  above_one: float
  dead_units: float


class Activity(NamedTuple):
  """Part (a) for one configuration: the state and the gates along a sequence at initialisation.

  Attributes:
    hidden_rms: ``(seeds, time)``, root mean square of :math:`h_t` over units, averaged
      over the batch (``inf``/``nan`` where it overflowed).
    cell_rms: the same for the carry's last leaf when the carry has more than one (the
      LSTM's memory cell :math:`c_t`); ``None`` for a one-array carry (the GRU).
    gates: gate name -> :class:`GateFractions`, averaged over seeds.
    samples: gate name -> a sample of its values (for histograms).
    non_finite: fraction of hidden-state values that overflowed to ``inf`` or ``nan``.
  """

  hidden_rms: np.ndarray
  cell_rms: np.ndarray | None
  gates: dict[str, GateFractions]
  samples: dict[str, np.ndarray]
  non_finite: float


class JacobianSummary(NamedTuple):
  r"""Part (b) for one configuration: :math:`\lVert \partial c_T / \partial c_k \rVert_2`.

  Attributes:
    norms: ``(seeds, time)``, the median over the batch for each ``k = 0 .. T-1``
      (distance ``T - k``).
    example: ``(time, batch)``, the first seed's norms per sequence (for a heatmap).
    rate: ``(seeds,)``, the fitted factor per step back of the median curve
      (:func:`gatejax.analysis.decay_rate`): < 1 fades, > 1 amplifies.
    amplified: fraction of sequences whose whole-sequence Jacobian has norm > 1.
    non_finite: fraction of norms that are ``inf`` or ``nan``.
  """

  norms: np.ndarray
  example: np.ndarray
  rate: np.ndarray
  amplified: float
  non_finite: float


class TrainingSummary(NamedTuple):
  """Part (c) for one configuration: training runs on the adding problem, one per seed.

  Attributes:
    losses: ``(seeds, steps)`` training loss per step (``nan`` after a divergence).
    final: ``(seeds,)`` loss on a held-out evaluation batch after training (``nan`` for a
      run that diverged).
    diverged: ``(seeds,)`` whether the run diverged (non-finite or exploding loss).
    after: part (a) measured again with the trained parameters of the runs that did not
      diverge (on the adding inputs of (a)), or ``None`` if every run diverged.
  """

  losses: np.ndarray
  final: np.ndarray
  diverged: np.ndarray
  after: Activity | None


class GateExperiment(NamedTuple):
  """All three parts; configurations are labelled by :func:`label` (``"GRU relu"``).

  Attributes:
    sizes: the :class:`GateSizes` used.
    activity: probe (``"adding"``, ``"gaussian"``) -> label -> :class:`Activity`.
    jacobian: probe -> label -> :class:`JacobianSummary`.
    training: label -> :class:`TrainingSummary` (empty when training was skipped).
    baseline: the adding problem's baseline loss (always predict 1).
  """

  sizes: GateSizes
  activity: dict[str, dict[str, Activity]]
  jacobian: dict[str, dict[str, JacobianSummary]]
  training: dict[str, TrainingSummary]
  baseline: float


def label(kind: str, gate: str) -> str:
  """The label of a configuration: ``label("gru", "relu") == "GRU relu"``."""
  return f"{kind.upper()} {gate}"


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def gate_cell(kind: str, gate: str, hidden: int) -> Cell:
  """The GRU or LSTM of the experiment with ``gate_fn`` = ``GATE_FUNCTIONS[gate]``.

  Cached, so that repeated runs reuse one cell value and so one compilation.

  Example:
    >>> import jax
    >>> gate_cell("lstm", "relu", 4).options.gate_fn is jax.nn.relu
    True
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  if gate not in GATE_FUNCTIONS:
    raise ValueError(f"gate must be one of {tuple(GATE_FUNCTIONS)}, got {gate!r}")
  fn = GATE_FUNCTIONS[gate]
  return gj.gru(hidden, gate_fn=fn) if kind == "gru" else gj.lstm(hidden, gate_fn=fn)


# ---------------------------------------------------------------------------
# (a) activity at initialisation
# ---------------------------------------------------------------------------


def _rms(a: Array) -> Array:
  """Root mean square over units, averaged over the batch: ``(T, batch, H) -> (T,)``."""
  return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(a), axis=-1)), axis=-1)


@bounded_jit(static_argnames=("cell",))
def _trajectories(
  cell: Cell, params: Any, xs: Float[Array, "seeds time batch input"]
) -> dict[str, Any]:
  """Per seed: RMS of ``h`` (and ``c``) per step, and every gate's values."""

  def one(params: Any, xs: Array) -> dict[str, Any]:
    parts = protocol.recurrence(cell)

    def fn(carry: Any, px: Array) -> tuple[Any, Array, tuple[Any, Any]]:
      carry, y, gates = parts.recur(params, carry, px)
      return carry, y, (carry, gates)

    carry = cell.initial_carry(xs.shape[1:-1], xs.dtype)
    time = loop.time(xs.shape[0])
    _, (h, (carries, gates)) = loop.scan(
      fn, carry, parts.project(params, xs), time=time, lengths=None
    )
    out = {
      "hidden_rms": _rms(h),
      "non_finite": jnp.mean((~jnp.isfinite(h)).astype(h.dtype)),
      # The gates gate_fn drives, named by the cell (the candidates n and g are not gates).
      "gates": protocol.gate_values(cell, gates),
    }
    memory = jax.tree.leaves(carries)
    if len(memory) > 1:  # a carry beyond the output, as the LSTM's memory cell c
      out["cell_rms"] = _rms(memory[-1])
    return out

  return jax.vmap(one)(params, xs)


def _fractions(values: np.ndarray) -> list[GateFractions]:
  """Per seed, :class:`GateFractions` of ``(seeds, T, batch, H)`` gate values.

  Taken over the finite values only (a ReLU GRU can overflow to ``inf``/``nan``), in
  float64 so that huge finite ReLU gates do not overflow the mean.
  """
  out = []
  for v in values.astype(np.float64):
    finite = v[np.isfinite(v)]
    if finite.size == 0:
      out.append(GateFractions(*([math.nan] * len(GateFractions._fields))))
      continue
    out.append(
      GateFractions(
        mean=float(np.mean(finite)),
        dead=float(np.mean(finite == 0)),
        shut=float(np.mean(finite < 0.1)),
        open=float(np.mean((finite > 0.9) & (finite <= 1))),
        above_one=float(np.mean(finite > 1)),
        dead_units=float(np.mean(np.all(v == 0, axis=(0, 1)))),
      )
    )
  return out


def _average(per_seed: Sequence[GateFractions]) -> GateFractions:
  """The mean over seeds of each fraction, leaving out seeds where it is NaN."""
  table = np.asarray([tuple(f) for f in per_seed], dtype=np.float64).reshape(-1, 6)
  means = [
    float(np.mean(col[np.isfinite(col)])) if np.isfinite(col).any() else math.nan for col in table.T
  ]
  return GateFractions(*means)


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  flat = values.ravel()
  flat = flat[np.isfinite(flat)]
  if flat.size <= _SAMPLES:
    return flat.copy()
  return rng.choice(flat, _SAMPLES, replace=False)


def _activity(cell: Cell, params: Any, xs: Array, seeds: Sequence[int] | None = None) -> Activity:
  """Part (a) for a batch of parameters (leading seed axis); ``seeds`` picks which to average."""
  out = jax.device_get(_trajectories(cell, params, xs))
  keep = list(range(xs.shape[0])) if seeds is None else list(seeds)
  rng = np.random.default_rng(0)
  gates = {name: np.asarray(v)[keep] for name, v in out["gates"].items()}
  return Activity(
    hidden_rms=np.asarray(out["hidden_rms"])[keep],
    cell_rms=np.asarray(out["cell_rms"])[keep] if "cell_rms" in out else None,
    gates={name: _average(_fractions(v)) for name, v in gates.items()},
    samples={name: _sample(v, rng) for name, v in gates.items()},
    non_finite=float(np.mean(np.asarray(out["non_finite"])[keep])) if keep else math.nan,
  )


# ---------------------------------------------------------------------------
# (b) the carry path
# ---------------------------------------------------------------------------


@bounded_jit(static_argnames=("cell",))
def _seed_jacobians(cell: Cell, params: Any, xs: Array) -> Array:
  """:func:`gatejax.analysis.jacobian_norms` for each seed: ``(seeds, T, batch)``."""
  return jax.vmap(lambda p, x: analysis.jacobian_norms(cell, p, x))(params, xs)


def _jacobian(cell: Cell, params: Any, xs: Array) -> JacobianSummary:
  norms = np.asarray(_seed_jacobians(cell, params, xs), dtype=np.float64)  # (seeds, T, batch)
  # The median is NaN when any sequence's norm is: an overflowed run shows as a gap.
  median = np.median(norms, axis=-1)
  rate = np.asarray(analysis.decay_rate(jnp.asarray(median.T, jnp.float32)), dtype=np.float64)
  return JacobianSummary(
    norms=median,
    example=norms[0],
    rate=rate,
    amplified=float(np.mean(norms[:, 0, :] > 1)),
    non_finite=float(np.mean(~np.isfinite(norms))),
  )


# ---------------------------------------------------------------------------
# (c) training
# ---------------------------------------------------------------------------


def _train(cell: Cell, sizes: GateSizes, seed: int, probe: Array) -> TrainingSummary:
  """``sizes.seeds`` runs of :func:`gatejax.train.fit`; the trained gates are probed on ``probe``."""
  from gatejax import train

  task = tasks.adding(sizes.train_time)
  losses, finals, diverged, params = [], [], [], []
  for s in range(sizes.seeds):
    result = train.fit(
      cell,
      task,
      key=jax.random.fold_in(jax.random.key(seed), 1000 + s),
      steps=sizes.train_steps,
      batch_size=sizes.train_batch,
      learning_rate=sizes.learning_rate,
      clip_norm=sizes.clip_norm,
      eval_every=sizes.train_steps,
      progress=False,
    )
    history = result.history
    loss = np.full(sizes.train_steps, np.nan)
    recorded = np.asarray(history.loss, dtype=np.float64)[: sizes.train_steps]
    loss[np.asarray(history.step, dtype=int)[: recorded.size]] = recorded
    losses.append(loss)
    diverged.append(bool(history.diverged))
    finals.append(math.nan if history.diverged else float(history.eval_loss[-1]))
    params.append(result.params.cell)
  ok = [s for s in range(sizes.seeds) if not diverged[s]]
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
  return TrainingSummary(
    losses=np.stack(losses),
    final=np.asarray(finals),
    diverged=np.asarray(diverged),
    after=_activity(cell, stacked, probe, seeds=ok) if ok else None,
  )


# ---------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------


@bounded_jit(static_argnames=("probe", "seeds", "time", "batch"))
def _inputs(probe: str, key: jax.Array, *, seeds: int, time: int, batch: int) -> Array:
  """``(seeds, time, batch, 2)`` inputs of a probe, one draw per seed."""
  keys = jax.random.split(key, seeds)
  if probe == "adding":
    sample = tasks.adding(time).sample
    return jax.vmap(lambda k: sample(k, batch).xs)(keys)
  return jax.vmap(lambda k: jax.random.normal(k, (time, batch, 2)))(keys)


def _init(cell: Cell, key: jax.Array, seeds: int) -> Any:
  """Parameters for seeds ``0 .. seeds-1``, stacked: seed ``s`` uses ``fold_in(key, s)``.

  Eager, not jitted: the eager operations of ``cell.init`` are compiled once per shape and
  shared with every other initialisation in the process (:func:`gatejax.train.fit`'s too).
  """
  params = [cell.init(jax.random.fold_in(key, s), 2) for s in range(seeds)]
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def run_gates(
  sizes: GateSizes = DEFAULT_SIZES,
  *,
  kinds: Sequence[str] = KINDS,
  gates: Sequence[str] = tuple(GATE_FUNCTIONS),
  probes: Sequence[str] = PROBES,
  train: bool | Sequence[str] = True,
  seed: int = 0,
  progress: Callable[[str], None] | None = None,
) -> GateExperiment:
  """Run parts (a), (b) and, with ``train``, (c) of the gate experiment.

  The sigmoid, hard-sigmoid and ReLU cells of a kind share their parameters seed by seed
  (``init`` does not depend on ``gate_fn``), so they differ only in the gate function;
  both probes see those same parameters, and the training runs of (c) start from equal
  weights too (:func:`gatejax.train.fit` with the same key).

  Args:
    sizes: a :class:`GateSizes` (``QUICK_SIZES`` for a smoke run).
    kinds: cells to run, from ``("gru", "lstm")``.
    gates: gate functions, keys of :data:`GATE_FUNCTIONS`.
    probes: inputs of (a) and (b), from ``("adding", "gaussian")``; (c) probes its
      trained gates on the adding inputs.
    train: run part (c), the slow part: ``True`` for every configuration, ``False`` for
      none, or the labels to train (``("LSTM sigmoid", "LSTM relu")``).
    seed: the base seed.
    progress: called with a one-line message as each configuration starts.

  Returns:
    A :class:`GateExperiment`.
  """
  if not isinstance(sizes, GateSizes):
    raise TypeError(f"sizes must be a GateSizes, got {type(sizes).__name__}")
  for name, chosen, allowed in (("kinds", kinds, KINDS), ("gates", gates, tuple(GATE_FUNCTIONS))):
    for x in chosen:
      if x not in allowed:
        raise ValueError(f"{name} must be drawn from {allowed}, got {x!r}")
  for p in probes:
    if p not in PROBES:
      raise ValueError(f"probes must be drawn from {PROBES}, got {p!r}")
  say = progress or (lambda message: None)
  base = jax.random.key(seed)
  shape = {"seeds": sizes.seeds, "time": sizes.time, "batch": sizes.batch}
  inputs = {p: _inputs(p, jax.random.fold_in(base, 10 + PROBES.index(p)), **shape) for p in PROBES}
  sub = max(1, min(sizes.jacobian_batch, sizes.batch))
  activity: dict[str, dict[str, Activity]] = {p: {} for p in probes}
  jacobian: dict[str, dict[str, JacobianSummary]] = {p: {} for p in probes}
  training: dict[str, TrainingSummary] = {}
  for kind in kinds:
    params = _init(gate_cell(kind, "sigmoid", sizes.hidden), base, sizes.seeds)
    for gate in gates:
      cell = gate_cell(kind, gate, sizes.hidden)
      name = label(kind, gate)
      for p in probes:
        say(f"gates: {name}, {p} inputs: gates and Jacobians at initialisation")
        activity[p][name] = _activity(cell, params, inputs[p])
        jacobian[p][name] = _jacobian(cell, params, inputs[p][:, :, :sub])
      if train is True or (not isinstance(train, bool) and name in train):
        say(f"gates: {name}: {sizes.seeds} training runs on the adding problem")
        training[name] = _train(cell, sizes, seed, inputs["adding"])
  return GateExperiment(
    sizes=sizes,
    activity=activity,
    jacobian=jacobian,
    training=training,
    baseline=tasks.adding(sizes.train_time).baseline,
  )


# ---------------------------------------------------------------------------
# Tables, findings and JSON
# ---------------------------------------------------------------------------


def _pct(x: float) -> str:
  return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


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
        f"| {name} | {g} | {_format.number(f.mean)} | {_pct(f.dead)} | {_pct(f.shut)} | {_pct(f.open)} "
        f"| {_pct(f.above_one)} | {_pct(f.dead_units)} | {_final_rms(act.hidden_rms)} "
        f"| {_final_rms(act.cell_rms)} | {_pct(act.non_finite)} |"
      )
  return rows


_ACTIVITY_HEAD = [
  "| cell | gate | mean | dead (=0) | shut (<0.1) | open (0.9–1] | >1 | dead units "
  "| RMS h_T | RMS c_T | non-finite h |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
]


def activity_table(result: GateExperiment, probe: str = "adding") -> str:
  """Part (a) as a markdown table: one row per configuration and gate.

  Fractions are of the finite gate values over steps, sequences and units, averaged over
  seeds; "dead units" are units whose gate is exactly 0 at every step of every sequence.
  """
  return "\n".join(_ACTIVITY_HEAD + _activity_rows(result.activity[probe]))


def trained_activity_table(result: GateExperiment) -> str:
  """Part (a) measured again after training (runs that did not diverge), adding inputs."""
  acts = {n: t.after for n, t in result.training.items() if t.after is not None}
  return "\n".join(_ACTIVITY_HEAD + _activity_rows(acts))


def jacobian_table(result: GateExperiment, probe: str = "adding") -> str:
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
      f"| {name} | {cells} | {_format.number(rate)} | {_pct(jac.amplified)} | {_pct(jac.non_finite)} |"
    )
  return "\n".join(rows)


def training_table(result: GateExperiment) -> str:
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


def _median_final(tr: TrainingSummary) -> float:
  finite = tr.final[np.isfinite(tr.final)]
  return float(np.median(finite)) if finite.size else math.nan


def _exploded(jac: JacobianSummary) -> bool:
  """The carry path amplifies: overflow, most whole-sequence Jacobians above 1, or growth."""
  rate = float(np.median(jac.rate)) if np.isfinite(jac.rate).all() else math.nan
  return jac.non_finite > 0 or jac.amplified > 0.5 or (math.isfinite(rate) and rate > 1)


def _learned(tr: TrainingSummary, baseline: float) -> bool:
  """Median final loss under half the baseline: the run used the marked numbers."""
  final = _median_final(tr)
  return math.isfinite(final) and final < 0.5 * baseline


def _where(probe: str) -> str:
  return "the adding problem's inputs" if probe == "adding" else "unit Gaussian inputs"


def _init_findings(result: GateExperiment, probe: str, kind: str) -> list[str]:
  acts = result.activity[probe]
  sig, relu, hard = (acts.get(label(kind, g)) for g in ("sigmoid", "relu", "hard_sigmoid"))
  if sig is None or relu is None:
    return []
  out = []
  K, where = kind.upper(), _where(probe)
  keep = protocol.keep_gate(gate_cell(kind, "sigmoid", 1)) or ""
  sig_dead = max(f.dead for f in sig.gates.values())
  dead = ", ".join(f"{_pct(f.dead)} of `{g}`" for g, f in relu.gates.items())
  units = max(f.dead_units for f in relu.gates.values())
  if sig_dead == 0 and min(f.dead for f in relu.gates.values()) > 0:
    out.append(
      f"{K} at initialisation, {where}: no sigmoid gate value is exactly 0, while ReLU gates "
      f"are exactly 0 for {dead} values: the one-sided suppression the seed describes. "
      + (
        "It is transient, not permanent: no ReLU gate unit is 0 along every step of every sequence."
        if units == 0
        else f"Up to {_pct(units)} of ReLU gate units are 0 along every step of every sequence."
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
      f"{K}, {where}: {_pct(above)} of ReLU keep-gate (`{keep}`) values exceed 1, which no "
      "sigmoid gate can: such a gate multiplies the carry up instead of keeping it."
    )
  if relu.non_finite > 0:
    bounded_ok = sig.non_finite == 0 and (hard is None or hard.non_finite == 0)
    out.append(
      f"{K} with ReLU gates, {where}: the hidden state overflowed to inf/NaN "
      f"({_pct(relu.non_finite)} of values) within {result.sizes.time} steps at "
      "initialisation; "
      + ("the bounded gates never did." if bounded_ok else "so did a bounded gate here.")
    )
  if hard is not None and keep in hard.gates and hard.gates[keep].dead > 0:
    out.append(
      f"{K}, {where}: the hard sigmoid is exactly 0 for {_pct(hard.gates[keep].dead)} of "
      f"`{keep}` values: a bounded gate can have flat, gradient-free regions too."
    )
  return out


def _jacobian_findings(result: GateExperiment, probe: str, kind: str) -> list[str]:
  jacs = result.jacobian[probe]
  sig, relu = jacs.get(label(kind, "sigmoid")), jacs.get(label(kind, "relu"))
  if sig is None or relu is None:
    return []
  K, where, T = kind.upper(), _where(probe), result.sizes.time
  r_sig = float(np.median(sig.rate))
  r_relu = float(np.median(relu.rate)) if np.isfinite(relu.rate).all() else math.nan
  if _exploded(relu):
    sig_text = (
      f"with sigmoid gates no sequence is amplified and the norm fades by {_format.number(r_sig)} per step"
      if not _exploded(sig)
      else "but the sigmoid gates amplify too here"
    )
    if relu.non_finite > 0.5:
      what = (
        f"with ReLU gates the state itself overflows, and {_pct(relu.non_finite)} of the norms "
        "are inf/NaN"
      )
    else:
      what = (
        f"with ReLU gates ‖∂c_T/∂c_0‖ exceeds 1 for {_pct(relu.amplified)} of sequences over "
        f"{T} steps (fitted factor {_format.number(r_relu)} per step back"
        + (f", {_pct(relu.non_finite)} of the norms inf/NaN)" if relu.non_finite > 0 else ")")
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


def _training_findings(result: GateExperiment, kind: str) -> list[str]:
  runs = {g: result.training.get(label(kind, g)) for g in GATE_FUNCTIONS}
  sig, relu = runs["sigmoid"], runs["relu"]
  if sig is None or relu is None:
    return []
  parts = []
  for g, tr in runs.items():
    if tr is not None:
      med = _median_final(tr)
      parts.append(
        f"{g} {_format.number(med)} ({_format.number(med / result.baseline)} × baseline, "
        f"{int(tr.diverged.sum())}/{tr.diverged.size} diverged)"
      )
  head = (
    f"{kind.upper()} trained on the adding problem (T = {result.sizes.train_time}, "
    f"{result.sizes.train_steps} steps), median final loss: " + "; ".join(parts) + "."
  )
  sig_final, relu_final = _median_final(sig), _median_final(relu)
  if np.mean(relu.diverged) > np.mean(sig.diverged):
    verdict = "ReLU gates diverge where sigmoid gates do not."
  elif not _learned(sig, result.baseline) and not _learned(relu, result.baseline):
    verdict = "Neither learned the task within this budget, so training decides nothing here."
  elif _learned(sig, result.baseline) and not _learned(relu, result.baseline):
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
    before = "" if init is None else f" (at initialisation: {_pct(init.gates[worst].dead_units)})"
    if units[worst] > 0:
      out.append(
        f"After training, {_pct(units[worst])} of the {kind.upper()}'s ReLU `{worst}` gate "
        f"units are 0 on every step of every probe sequence{before}: units the one-sided "
        "suppression has switched off (they receive no gradient through that gate)."
      )
    else:
      out.append(
        f"After training, no ReLU gate unit of the {kind.upper()} is 0 on every step of every "
        "probe sequence: the suppression stayed transient."
      )
  return out


def _overall(result: GateExperiment) -> list[str]:
  """Where the seed's argument holds and where it fails, from the findings' conditions."""
  relu_fails, hard_ok = [], []
  for kind in KINDS:
    relu_j = [result.jacobian[p].get(label(kind, "relu")) for p in result.jacobian]
    hard_j = [result.jacobian[p].get(label(kind, "hard_sigmoid")) for p in result.jacobian]
    relu_a = [result.activity[p].get(label(kind, "relu")) for p in result.activity]
    if any(j is not None and _exploded(j) for j in relu_j) or any(
      a is not None and a.non_finite > 0 for a in relu_a
    ):
      relu_fails.append(kind)
      hard_tr = result.training.get(label(kind, "hard_sigmoid"))
      sig_tr = result.training.get(label(kind, "sigmoid"))
      trains_alike = (
        hard_tr is None
        or sig_tr is None
        or (not hard_tr.diverged.any() and _median_final(hard_tr) <= 2 * _median_final(sig_tr))
      )
      if hard_j and all(j is not None and not _exploded(j) for j in hard_j) and trains_alike:
        hard_ok.append(kind.upper())
  if not relu_fails:
    return ["No ReLU-gated cell exploded here: the measured difference is the exact zeros alone."]
  out = [
    "Overall: the seed is right that ReLU gates are exactly 0 for a large share of values, "
    f"but in {', '.join(k.upper() for k in relu_fails)} the failure that shows is the other "
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
        f"For the {kind.upper()} this is fatal: {int(relu_tr.diverged.sum())} of "
        f"{relu_tr.diverged.size} ReLU-gated training runs diverged "
        f"(sigmoid: {int(sig_tr.diverged.sum())})."
      )
    elif _learned(relu_tr, result.baseline):
      out.append(
        f"For the {kind.upper()} it is not: with gradient clipping the ReLU-gated cell still "
        f"learned (median final loss {_format.number(_median_final(relu_tr))} against "
        f"{_format.number(_median_final(sig_tr))} with sigmoid gates), so 'ReLU gates fail' is not a law."
      )
  if hard_ok:
    out.append(
      "The hard sigmoid, piecewise linear with exact zeros like a ReLU but bounded by 1, "
      f"neither explodes nor trains worse than twice the sigmoid's loss in {', '.join(hard_ok)}: "
      "what a gate needs is the bounded range (0, 1) the seed names, more than smoothness or "
      "being differentiable everywhere."
    )
  return out


def findings(result: GateExperiment) -> list[str]:
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


def to_markdown(result: GateExperiment) -> str:
  """All tables of the experiment with headings, and the findings as a list."""
  parts = []
  for probe in result.activity:
    parts.append(
      f"#### (a) Gates at initialisation, {probe} inputs\n\n" + activity_table(result, probe)
    )
  for probe in result.jacobian:
    parts.append(
      f"#### (b) ‖∂c_T/∂c_k‖₂ against distance d = T − k, {probe} inputs\n\n"
      + jacobian_table(result, probe)
    )
  if result.training:
    parts.append(
      f"#### (c) Training on the adding problem, T = {result.sizes.train_time} "
      f"(baseline {result.baseline:.3f})\n\n" + training_table(result)
    )
    parts.append(
      "#### (c) The gates after training (runs that did not diverge), adding inputs\n\n"
      + trained_activity_table(result)
    )
  parts.append("#### Findings\n\n" + "\n".join(f"- {s}" for s in findings(result)))
  return "\n\n".join(parts)


def to_json(result: GateExperiment) -> dict[str, Any]:
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
