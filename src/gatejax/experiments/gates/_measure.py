"""Measuring the gate experiment: gates, carry Jacobians and training, per gate function."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.run.loop as loop
from gatejax import analysis, protocol
from gatejax._jit import bounded_jit
from gatejax.cells import Cell
from gatejax.experiments import _common

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


class Sizes(NamedTuple):
  """Sizes of the gate experiment, and what it runs.

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
    kinds: cells to run, from :data:`KINDS`.
    gates: gate functions, keys of :data:`GATE_FUNCTIONS`.
    probes: inputs of (a) and (b), from :data:`PROBES`; (c) probes its trained gates on
      the adding inputs.
    trained: the configurations part (c), the slow part, trains (labels of :func:`label`,
      ``("LSTM sigmoid", "LSTM relu")``), or ``None`` for every one.
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
  kinds: tuple[str, ...] = KINDS
  gates: tuple[str, ...] = tuple(GATE_FUNCTIONS)
  probes: tuple[str, ...] = PROBES
  trained: tuple[str, ...] | None = None


#: The sizes of ``gatejax report``.
FULL = Sizes()
#: Tiny sizes for ``gatejax report --quick`` and the tests. Its training sizes equal those of
#: :data:`gatejax.experiments.horizon.QUICK`, so that a quick report compiles each sigmoid
#: cell's training step once for both experiments; it trains the LSTM's two extremes.
QUICK = Sizes(
  time=20,
  hidden=8,
  batch=4,
  jacobian_batch=4,
  seeds=2,
  train_time=20,
  train_steps=40,
  train_batch=16,
  learning_rate=1e-2,
  trained=("LSTM sigmoid", "LSTM relu"),
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


class Result(NamedTuple):
  """All three parts; configurations are labelled by :func:`label` (``"GRU relu"``).

  Attributes:
    sizes: the :class:`Sizes` used.
    activity: probe (``"adding"``, ``"gaussian"``) -> label -> :class:`Activity`.
    jacobian: probe -> label -> :class:`JacobianSummary`.
    training: label -> :class:`TrainingSummary` (empty when training was skipped).
    baseline: the adding problem's baseline loss (always predict 1).
  """

  sizes: Sizes
  activity: dict[str, dict[str, Activity]]
  jacobian: dict[str, dict[str, JacobianSummary]]
  training: dict[str, TrainingSummary]
  baseline: float


def label(kind: str, gate: str) -> str:
  """The label of a configuration: ``label("gru", "relu") == "GRU relu"``."""
  return f"{_common.display_name(kind)} {gate}"


def gate_cell(kind: str, gate: str, hidden: int) -> Cell:
  """The GRU or LSTM of the experiment with ``gate_fn`` = ``GATE_FUNCTIONS[gate]``.

  Cells compare by value, so every call with the same arguments shares one compilation.

  Example:
    >>> import jax
    >>> gate_cell("lstm", "relu", 4).options.gate_fn is jax.nn.relu
    True
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  if gate not in GATE_FUNCTIONS:
    raise ValueError(f"gate must be one of {tuple(GATE_FUNCTIONS)}, got {gate!r}")
  return _common.cell(kind, hidden, gate_fn=GATE_FUNCTIONS[gate])


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


def _train(cell: Cell, sizes: Sizes, key: PRNGKeyArray, probe: Array) -> TrainingSummary:
  """``sizes.seeds`` runs of :func:`gatejax.train.fit`; the trained gates are probed on ``probe``."""
  from gatejax import train

  task = _common.task("adding", sizes.train_time)
  losses, finals, diverged, params = [], [], [], []
  for s in range(sizes.seeds):
    result = train.fit(
      cell,
      task,
      key=jax.random.fold_in(key, 1000 + s),
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
    sample = _common.task("adding", time).sample
    return jax.vmap(lambda k: sample(k, batch).xs)(keys)
  return jax.vmap(lambda k: jax.random.normal(k, (time, batch, 2)))(keys)


def _init(cell: Cell, key: jax.Array, seeds: int) -> Any:
  """Parameters for seeds ``0 .. seeds-1``, stacked: seed ``s`` uses ``fold_in(key, s)``.

  Eager, not jitted: the eager operations of ``cell.init`` are compiled once per shape and
  shared with every other initialisation in the process (:func:`gatejax.train.fit`'s too).
  """
  params = [cell.init(jax.random.fold_in(key, s), 2) for s in range(seeds)]
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def _check(sizes: Any) -> Sizes:
  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a gates.Sizes, got {type(sizes).__name__}")
  for name, allowed in (("kinds", KINDS), ("gates", tuple(GATE_FUNCTIONS)), ("probes", PROBES)):
    for x in getattr(sizes, name):
      if x not in allowed:
        raise ValueError(f"{name} must be drawn from {allowed}, got {x!r}")
  return sizes


def run(
  sizes: Sizes = FULL, *, key: PRNGKeyArray, progress: Callable[[str], None] | None = None
) -> Result:
  """Run parts (a), (b) and (c) of the gate experiment.

  The sigmoid, hard-sigmoid and ReLU cells of a kind share their parameters seed by seed
  (``init`` does not depend on ``gate_fn``), so they differ only in the gate function;
  both probes see those same parameters, and the training runs of (c) start from equal
  weights too (:func:`gatejax.train.fit` with the same key).

  Args:
    sizes: a :class:`Sizes` (:data:`FULL`, :data:`QUICK`): the sizes, and which cells, gate
      functions, probes and trainings run.
    key: the PRNG key of the whole experiment: seed ``s``'s parameters use
      ``fold_in(key, s)``, its training run ``fold_in(key, 1000 + s)``.
    progress: called with a one-line message as each configuration starts.

  Returns:
    A :class:`Result`.
  """
  sizes = _check(sizes)
  say = progress or (lambda message: None)
  shape = {"seeds": sizes.seeds, "time": sizes.time, "batch": sizes.batch}
  inputs = {p: _inputs(p, jax.random.fold_in(key, 10 + PROBES.index(p)), **shape) for p in PROBES}
  sub = max(1, min(sizes.jacobian_batch, sizes.batch))
  probes = sizes.probes
  activity: dict[str, dict[str, Activity]] = {p: {} for p in probes}
  jacobian: dict[str, dict[str, JacobianSummary]] = {p: {} for p in probes}
  training: dict[str, TrainingSummary] = {}
  for kind in sizes.kinds:
    params = _init(gate_cell(kind, "sigmoid", sizes.hidden), key, sizes.seeds)
    for gate in sizes.gates:
      cell = gate_cell(kind, gate, sizes.hidden)
      name = label(kind, gate)
      for p in probes:
        say(f"gates: {name}, {p} inputs: gates and Jacobians at initialisation")
        activity[p][name] = _activity(cell, params, inputs[p])
        jacobian[p][name] = _jacobian(cell, params, inputs[p][:, :, :sub])
      if sizes.trained is None or name in sizes.trained:
        say(f"gates: {name}: {sizes.seeds} training runs on the adding problem")
        training[name] = _train(cell, sizes, key, inputs["adding"])
  return Result(
    sizes=sizes,
    activity=activity,
    jacobian=jacobian,
    training=training,
    baseline=_common.task("adding", sizes.train_time).baseline,
  )
