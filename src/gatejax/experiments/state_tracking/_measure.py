"""Measuring the state-tracking experiment: train every cell variant, score it by length, probe it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

import gatejax as gj
from gatejax import analysis, tasks
from gatejax._jit import bounded_jit
from gatejax.experiments import _common


class Variant(NamedTuple):
  """A cell of the experiment: its factory's name, the options it is built with, and what
  they make of its transition.

  Attributes:
    kind: the factory's name in :data:`gatejax.cells.names.CELLS`.
    options: keyword options of the factory, as ``(name, value)`` pairs.
    range: the range of the transition's eigenvalues (the keep coefficient), as printed.
    linear: whether the recurrence is linear (affine) in its carry.
    ms_per_step: milliseconds per training step at hidden 32 and batch 128 on one busy
      core of a 2-core CPU (measured with gatejax, parity, length 40): the basis of
      :func:`estimate_seconds`.
  """

  kind: str
  options: tuple[tuple[str, Any], ...]
  range: str
  linear: bool
  ms_per_step: float


def _tanh(u: Array) -> Array:
  return jnp.tanh(u)


#: Every cell variant by its key: ``KIND`` with its default gates, ``KIND/neg`` with
#: ``negative_eigenvalues=True`` (Grazzi et al. 2025), ``min_gru/tanh`` with ``gate_fn=tanh``
#: (keep coefficient ``1 − tanh ∈ (0, 2)``).
VARIANTS: dict[str, Variant] = {
  "min_gru": Variant("min_gru", (), "(0, 1)", True, 5.0),
  "min_gru/neg": Variant("min_gru", (("negative_eigenvalues", True),), "(−1, 1)", True, 5.0),
  "min_gru/tanh": Variant("min_gru", (("gate_fn", _tanh),), "(0, 2)", True, 5.0),
  "min_lstm": Variant("min_lstm", (), "(0, 1)", True, 14.0),
  "min_lstm/neg": Variant("min_lstm", (("negative_eigenvalues", True),), "(−1, 1)", True, 14.0),
  "s6": Variant("s6", (), "(0, 1)", True, 95.0),
  "s6/neg": Variant("s6", (("negative_eigenvalues", True),), "(−1, 1)", True, 95.0),
  "delta_net": Variant("delta_net", (), "[0, 1]", True, 180.0),
  "delta_net/neg": Variant("delta_net", (("negative_eigenvalues", True),), "[−1, 1]", True, 180.0),
  "mlstm": Variant("mlstm", (), "(0, 1)", True, 25.0),
  "rg_lru": Variant("rg_lru", (), "(0, 1)", True, 46.0),
  "lru": Variant("lru", (), "complex, |λ| < 1", True, 26.0),
  "slstm": Variant("slstm", (), "nonlinear", False, 60.0),
  "rnn": Variant("rnn", (), "nonlinear", False, 6.0),
  "gru": Variant("gru", (), "nonlinear", False, 12.0),
  "lstm": Variant("lstm", (), "nonlinear", False, 12.0),
}

#: E1's cells (issue 19): every range of every linear family, and the nonlinear cells.
PARITY_CELLS = (
  "min_gru",
  "min_gru/neg",
  "min_lstm",
  "min_lstm/neg",
  "s6",
  "s6/neg",
  "delta_net",
  "delta_net/neg",
  "mlstm",
  "rg_lru",
  "lru",
  "slstm",
  "rnn",
  "gru",
  "lstm",
)
#: The cells that cost five to twenty times minGRU's step on a CPU (a matrix or an N-wide
#: state per unit, or a recurrent matrix per head): one seed each in :data:`FULL`.
SLOW_CELLS = ("s6", "s6/neg", "delta_net", "delta_net/neg", "slstm", "rg_lru")
#: E3's cells: the (−1, 1) real-diagonal minGRU, the complex LRU, nonlinear cells.
CYCLE_CELLS = ("min_gru/neg", "lru", "gru", "lstm")
#: E4's cells: (0, 1) and (−1, 1) linear cells against GRU and LSTM.
FLIP_CELLS = ("min_gru", "min_gru/neg", "gru", "lstm")
#: E5's cells beside E1's minGRU runs: the keep coefficient in (0, 2).
STABILITY_CELLS = ("min_gru/tanh",)
#: The flip-flop test sets: name -> ``p_ignore`` (Liu et al. 2023: train FFL(0.8), test
#: sparse FFL(0.98) and dense FFL(0.1)).
FLIP_TESTS = {"train p": 0.8, "sparse": 0.98, "dense": 0.1}


def label(key: str) -> str:
  """How tables print a variant: ``"minGRU (−1, 1)"``; a nonlinear cell by its name alone."""
  v, name = VARIANTS[key], title(key)
  if not v.linear:
    return name
  return f"{name} (complex)" if v.range.startswith("complex") else f"{name} {v.range}"


def title(key: str) -> str:
  """The title of a variant's cell family (``"minGRU"``), read from the cell itself."""
  return _common.title(build(key, 4))  # the smallest hidden size every variant takes


def build(key: str, hidden: int) -> Any:
  """The cell of a variant at ``hidden`` units (one value per arguments: cached)."""
  v = VARIANTS[key]
  return _common.cell(v.kind, hidden, **dict(v.options))


class Sizes(NamedTuple):
  """Sizes of the experiment, and the cells of each part.

  Attributes:
    hidden: hidden units of every cell.
    batch: sequences per training step.
    learning_rates: Adam's learning rates; every run at each.
    seeds: parity's seeds per learning rate (seed ``s`` is ``fold_in(key, s)``, the same for
      every cell).
    one_seed_cells: the slow cells, trained on parity with the first seed only.
    clip_norm: gradient clipping by global norm.
    train_length: the longest training sequence (lengths uniform in ``[1, train_length]``).
    test_lengths: the lengths accuracy and state separation are measured at.
    eval_batch: sequences per test length (and per flip-flop test set).
    probe_length: the length λ_max, the gradient horizon and the gradient norm are measured at.
    probe_batch: sequences of the probe.
    parity_steps, parity_cells: E1 (and E2 on its models).
    cycle_steps, cycle_cells, cycle_seeds: E3, cycle navigation mod 5.
    flip_steps, flip_length, flip_test_length, flip_cells, flip_seeds: E4, flip-flop:
      training instructions, test instructions.
    stability_cells: E5's extra variants, trained on parity like E1.
  """

  hidden: int = 32
  batch: int = 64
  learning_rates: tuple[float, ...] = (3e-3,)
  seeds: int = 2
  one_seed_cells: tuple[str, ...] = SLOW_CELLS
  clip_norm: float = 1.0
  train_length: int = 40
  test_lengths: tuple[int, ...] = (10, 40, 80, 160, 256, 512)
  eval_batch: int = 256
  probe_length: int = 256
  probe_batch: int = 32
  parity_steps: int = 1000
  parity_cells: tuple[str, ...] = PARITY_CELLS
  cycle_steps: int = 3000
  cycle_cells: tuple[str, ...] = CYCLE_CELLS
  cycle_seeds: int = 1
  flip_steps: int = 600
  flip_length: int = 64
  flip_test_length: int = 512
  flip_cells: tuple[str, ...] = FLIP_CELLS
  flip_seeds: int = 1
  stability_cells: tuple[str, ...] = STABILITY_CELLS


#: The sizes of ``gatejax report --full`` and notebook 08: every cell of issue 19, reduced
#: to fit about half an hour on one CPU core (one learning rate, two seeds, fewer steps).
FULL = Sizes()
#: The default report's reduced version: parity only, minGRU in (0, 1) and (−1, 1) against
#: the GRU, one seed, short runs (about a minute on two CPU cores).
REPORT = Sizes(
  hidden=16,
  batch=64,
  seeds=1,
  test_lengths=(40, 160, 512),
  eval_batch=128,
  probe_length=128,
  probe_batch=16,
  parity_steps=1500,
  parity_cells=("min_gru", "min_gru/neg", "gru"),
  cycle_cells=(),
  flip_cells=(),
  stability_cells=(),
)
#: Tiny sizes for ``gatejax report --quick`` and the tests: one parity run, one flip-flop run.
QUICK = Sizes(
  hidden=4,
  batch=8,
  seeds=1,
  train_length=6,
  test_lengths=(4, 12),
  eval_batch=8,
  probe_length=12,
  probe_batch=4,
  parity_steps=3,
  parity_cells=("min_gru/neg",),
  cycle_steps=3,
  cycle_cells=(),
  flip_steps=3,
  flip_length=8,
  flip_test_length=16,
  flip_cells=("min_gru",),
  stability_cells=(),
)


class Run(NamedTuple):
  """One trained model on a last-step task (parity, cycle navigation), scored by length.

  Attributes:
    cell: the variant's key in :data:`VARIANTS`.
    seed: the seed's index.
    learning_rate: Adam's learning rate.
    accuracy: ``(len(test_lengths),)`` accuracy at each test length
      (:func:`gatejax.train.accuracy_by_length`).
    separation: ``(len(test_lengths),)`` the state separation (:func:`separation`) of the
      same sequences' final outputs.
    lyapunov: λ_max, natural log per step, mean over the probe (``nan`` if not measured).
    horizon: the gradient horizon of the task's loss at ``probe_length`` (1% of the peak).
    grad_norm: the median gradient norm of training.
    probe_grad_norm: the norm of the loss gradient at ``probe_length`` (``inf``/``nan``
      when it overflows).
    final_loss: the mean training loss of the last tenth of the steps (``nan`` if diverged).
    diverged: whether training diverged (:func:`gatejax.train.fit`'s rule).
    seconds: wall time of the training.
    error: the exception a run raised (its numbers are then ``nan``), ``""`` if none: one
      failing cell is reported in a long sweep instead of ending it.
  """

  cell: str
  seed: int
  learning_rate: float
  accuracy: np.ndarray
  separation: np.ndarray
  lyapunov: float
  horizon: int
  grad_norm: float
  probe_grad_norm: float
  final_loss: float
  diverged: bool
  seconds: float
  error: str = ""


class FlipRun(NamedTuple):
  """One model trained on flip-flop, scored on each test set of ``FLIP_TESTS``.

  Attributes:
    cell, seed, learning_rate: as :class:`Run`.
    per_read: test set -> the accuracy over all reads.
    all_reads: test set -> the fraction of sequences whose every read is right.
    lyapunov: λ_max on the probe (training p_ignore, ``probe_length`` instructions).
    final_loss, diverged, seconds, error: as :class:`Run`.
  """

  cell: str
  seed: int
  learning_rate: float
  per_read: dict[str, float]
  all_reads: dict[str, float]
  lyapunov: float
  final_loss: float
  diverged: bool
  seconds: float
  error: str = ""


class Result(NamedTuple):
  """What :func:`run` measured.

  Attributes:
    sizes: the :class:`Sizes`.
    parity: E1 (with E2's measures), every run.
    cycle: E3, cycle navigation mod 5, every run.
    flip_flop: E4, every run.
    stability: E5's extra variants on parity (E1's minGRU runs are the other ranges).
    seconds: wall time of the whole run.
  """

  sizes: Sizes
  parity: tuple[Run, ...]
  cycle: tuple[Run, ...]
  flip_flop: tuple[FlipRun, ...]
  stability: tuple[Run, ...]
  seconds: float = math.nan


def separation(
  states: Float[Array, "batch features"], labels: Int[Array, " batch"], num_classes: int
) -> Float[Array, ""]:
  r"""How far apart the label classes' states lie, against their spread.

  .. math::

    r = \frac{\operatorname{mean}_{a < b} \lVert \mu_a - \mu_b \rVert}
      {\sqrt{\tfrac1N \sum_i \lVert h_i - \mu_{y_i} \rVert^2}}

  over the classes present (``μ_a`` the mean state of class ``a``). A readout that tells the
  classes apart needs ``r`` well above 0; a linear tracker's ``r`` fades with the length
  when its separating direction contracts (arXiv 2605.07755), a nonlinear tracker's stays.
  ``nan`` with fewer than two classes present; ``inf`` when the classes are separated with
  no spread at all.

  Args:
    states: ``(batch, features)`` final states (complex parts count as features).
    labels: ``(batch,)`` int class of each state, in ``[0, num_classes)``.
    num_classes: the number of classes.

  Example:
    >>> import jax.numpy as jnp
    >>> states = jnp.array([[0.0], [2.0], [10.0], [12.0]])
    >>> float(separation(states, jnp.array([0, 0, 1, 1]), 2))   # |1 - 11| / 1
    10.0
  """
  states = jnp.asarray(states)
  if jnp.iscomplexobj(states):
    states = jnp.concatenate([states.real, states.imag], axis=-1)
  states = states.reshape(states.shape[0], -1).astype(jnp.float32)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)  # (batch, classes)
  counts = jnp.sum(onehot, axis=0)
  present = counts > 0
  means = (onehot.T @ states) / jnp.maximum(counts, 1)[:, None]
  spread = jnp.sqrt(jnp.mean(jnp.sum((states - onehot @ means) ** 2, axis=-1)))
  gaps = jnp.sqrt(jnp.sum((means[:, None] - means[None, :]) ** 2, axis=-1))
  pairs = present[:, None] & present[None, :] & jnp.triu(jnp.ones_like(gaps, bool), k=1)
  npairs = jnp.sum(pairs).astype(states.dtype)
  mean_gap = jnp.sum(jnp.where(pairs, gaps, 0.0)) / jnp.maximum(npairs, 1)
  return jnp.where(npairs > 0, mean_gap / spread, jnp.nan)


@bounded_jit(static_argnames=("cell", "num_classes"))
def _separation_of(cell: Any, params: Any, batch: tasks.Batch, num_classes: int) -> Array:
  _, ys = gj.scan(cell, params.cell, batch.xs, lengths=batch.lengths)
  return separation(ys[-1], batch.targets, num_classes)


@bounded_jit(static_argnames=("cell", "task"))
def _probe(cell: Any, task: tasks.Task, params: Any, batch: tasks.Batch) -> dict[str, Array]:
  """The gradient horizon's contributions and the loss gradient's norm at the probe length."""
  from gatejax import train

  readout = params.readout

  def loss(ys: Array, carry: Any) -> Array:
    last = ys[-1] @ readout.w + jnp.reshape(readout.b, (1, -1))
    return task.loss(last, batch)

  contributions = analysis.contribution_norms(cell, params.cell, batch.xs, loss)
  grads = jax.grad(lambda p: train.loss_fn(cell, task, p, batch))(params)
  norm = jnp.sqrt(sum(jnp.sum(jnp.abs(g) ** 2) for g in jax.tree.leaves(grads)))
  return {"contributions": contributions, "grad_norm": norm}


def lyapunov(cell: Any, params: Any, xs: Array) -> float:
  """λ_max of the cell driven by ``xs``, mean over the batch, a sixteenth of the steps as
  transient (:func:`gatejax.dynamics.largest_lyapunov_exponent`; the LRU's complex carry as
  its real and imaginary parts)."""
  transient = xs.shape[0] // 16
  lam = gj.dynamics.largest_lyapunov_exponent(cell, params, xs, transient=transient)
  return float(jnp.mean(lam))


def _horizon(contributions: np.ndarray) -> int:
  curve = jnp.asarray(contributions, jnp.float32)
  finite = jnp.where(jnp.isfinite(curve), curve, jnp.zeros_like(curve))
  return int(analysis.gradient_horizon(finite, fraction=_common.HORIZON_FRACTION))


def _train(cell: Any, task: tasks.Task, key: PRNGKeyArray, lr: float, steps: int, sizes: Sizes):
  from gatejax import train

  return train.fit(
    cell,
    task,
    key=key,
    steps=steps,
    batch_size=sizes.batch,
    learning_rate=lr,
    clip_norm=sizes.clip_norm,
    eval_every=0,  # scored by length afterwards: no evaluation set to compile
    progress=False,
  )


def _final_loss(history: Any) -> float:
  """The mean training loss of the last tenth of the steps (``nan`` if diverged)."""
  if history.diverged or not history.loss:
    return math.nan
  return float(np.mean(history.loss[-max(1, len(history.loss) // 10) :]))


def _median(values: list[float]) -> float:
  finite = [v for v in values if math.isfinite(v)]
  return float(np.median(finite)) if finite else math.nan


def _last_step_run(
  key_name: str,
  task: tasks.Task,
  num_classes: int,
  seed: int,
  lr: float,
  steps: int,
  sizes: Sizes,
  key: PRNGKeyArray,
) -> Run:
  from gatejax import train

  cell = build(key_name, sizes.hidden)
  began = time.perf_counter()
  fitted = _train(cell, task, key, lr, steps, sizes)
  seconds = time.perf_counter() - began
  params = fitted.params
  k_eval = jax.random.fold_in(key, 1)
  acc = train.accuracy_by_length(
    cell, task, params, sizes.test_lengths, key=k_eval, batch_size=sizes.eval_batch
  )
  seps = []
  for i, n in enumerate(sizes.test_lengths):
    # The batch accuracy_by_length scored at this length: the same sequences.
    batch = task.sample(jax.random.fold_in(k_eval, i), sizes.eval_batch, length=n)
    seps.append(float(_separation_of(cell, params, batch, num_classes)))
  probe = task.sample(jax.random.fold_in(key, 2), sizes.probe_batch, length=sizes.probe_length)
  measured = jax.device_get(_probe(cell, task, params, probe))
  return Run(
    cell=key_name,
    seed=seed,
    learning_rate=lr,
    accuracy=np.asarray(acc, np.float64),
    separation=np.asarray(seps, np.float64),
    lyapunov=lyapunov(cell, params.cell, probe.xs),
    horizon=_horizon(np.asarray(measured["contributions"])),
    grad_norm=_median(fitted.history.grad_norm),
    probe_grad_norm=float(measured["grad_norm"]),
    final_loss=_final_loss(fitted.history),
    diverged=fitted.history.diverged,
    seconds=seconds,
  )


@bounded_jit(static_argnames=("cell", "task"))
def _flip_scores(
  cell: Any, task: tasks.Task, params: Any, batch: tasks.Batch
) -> tuple[Array, Array]:
  from gatejax import train

  predictions = train.predict(cell, task, params, batch)
  assert task.metric is not None  # flip-flop's per-read accuracy
  return task.metric(predictions, batch), tasks.sequence_accuracy(predictions, batch)


def _flip_run(key_name: str, seed: int, lr: float, sizes: Sizes, key: PRNGKeyArray) -> FlipRun:
  cell = build(key_name, sizes.hidden)
  task = tasks.flip_flop(sizes.flip_length, FLIP_TESTS["train p"])
  began = time.perf_counter()
  fitted = _train(cell, task, key, lr, sizes.flip_steps, sizes)
  seconds = time.perf_counter() - began
  per_read, all_reads = {}, {}
  for i, (name, p) in enumerate(FLIP_TESTS.items()):
    test = tasks.flip_flop(sizes.flip_test_length, p)
    batch = test.sample(jax.random.fold_in(key, 10 + i), sizes.eval_batch)
    read, every = jax.device_get(_flip_scores(cell, test, fitted.params, batch))
    per_read[name], all_reads[name] = float(read), float(every)
  probe = task.sample(jax.random.fold_in(key, 2), sizes.probe_batch, length=sizes.probe_length)
  return FlipRun(
    cell=key_name,
    seed=seed,
    learning_rate=lr,
    per_read=per_read,
    all_reads=all_reads,
    lyapunov=lyapunov(cell, fitted.params.cell, probe.xs),
    final_loss=_final_loss(fitted.history),
    diverged=fitted.history.diverged,
    seconds=seconds,
  )


def _failed(part: str, cell: str, seed: int, lr: float, sizes: Sizes, error: str) -> Any:
  nan = math.nan
  if part == "flip_flop":
    empty = {name: nan for name in FLIP_TESTS}
    return FlipRun(cell, seed, lr, empty, dict(empty), nan, nan, False, nan, error)
  lengths = np.full(len(sizes.test_lengths), nan)
  return Run(cell, seed, lr, lengths, lengths.copy(), nan, 0, nan, nan, nan, False, nan, error)


def check_sizes(sizes: Any) -> Sizes:
  """``sizes`` if it is a valid :class:`Sizes`; else ``TypeError``/``ValueError`` naming the field."""
  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a state_tracking.Sizes, got {type(sizes).__name__}")
  for name in (
    "hidden",
    "batch",
    "seeds",
    "cycle_seeds",
    "flip_seeds",
    "train_length",
    "eval_batch",
    "probe_batch",
  ):
    value = getattr(sizes, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"sizes.{name} must be an int >= 1, got {value!r}")
  for name in ("parity_steps", "cycle_steps", "flip_steps"):
    value = getattr(sizes, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ValueError(f"sizes.{name} must be an int >= 0, got {value!r}")
  if sizes.probe_length < 2:
    raise ValueError(f"sizes.probe_length must be >= 2, got {sizes.probe_length!r}")
  if sizes.flip_length < 2 or sizes.flip_test_length < 2:
    raise ValueError(
      "sizes.flip_length and sizes.flip_test_length must be >= 2, got "
      f"{sizes.flip_length!r} and {sizes.flip_test_length!r}"
    )
  if not sizes.test_lengths or min(sizes.test_lengths) < 1:
    raise ValueError(f"sizes.test_lengths must be lengths >= 1, got {sizes.test_lengths!r}")
  if not sizes.learning_rates or not all(
    isinstance(lr, int | float) and lr > 0 for lr in sizes.learning_rates
  ):
    raise ValueError(f"sizes.learning_rates must be numbers > 0, got {sizes.learning_rates!r}")
  for field in ("parity_cells", "cycle_cells", "flip_cells", "stability_cells", "one_seed_cells"):
    for key in getattr(sizes, field):
      if key not in VARIANTS:
        raise ValueError(f"sizes.{field} must be drawn from {tuple(VARIANTS)}, got {key!r}")
  return sizes


def seeds_of(sizes: Sizes, part: str, cell: str) -> int:
  """How many seeds (per learning rate) a cell trains with in a part of :func:`run`."""
  if part == "cycle":
    return sizes.cycle_seeds
  if part == "flip_flop":
    return sizes.flip_seeds
  return 1 if cell in sizes.one_seed_cells else sizes.seeds


def runs_of(sizes: Sizes) -> list[tuple[str, str]]:
  """Every training run of :func:`run` in order, as ``(part, cell)``, once per seed and rate."""
  parts = (
    ("parity", sizes.parity_cells),
    ("cycle", sizes.cycle_cells),
    ("flip_flop", sizes.flip_cells),
    ("stability", sizes.stability_cells),
  )
  return [
    (part, cell)
    for part, cells in parts
    for cell in cells
    for _ in range(len(sizes.learning_rates) * seeds_of(sizes, part, cell))
  ]


# Compilation and evaluation per run, seconds (training, every test length, the probe).
_OVERHEAD_S = 25.0
# The sum above, against the wall time of FULL's run for notebook 08 (34.6 min, two CPU
# cores shared with other jobs, load about 8): it estimated 19.2 min.
_SHARED = 1.8


def estimate_seconds(sizes: Sizes) -> float:
  """A rough wall time of :func:`run` on two CPU cores shared with other work: per-step costs
  measured at hidden 32, batch 128, scaled by batch × hidden and by the sequence length, plus
  compilation and evaluation per run, calibrated on the full run of notebook 08 (:data:`FULL`
  took 35 minutes); an idle machine takes about half."""
  check_sizes(sizes)
  steps = {
    "parity": (sizes.parity_steps, sizes.train_length),
    "stability": (sizes.parity_steps, sizes.train_length),
    "cycle": (sizes.cycle_steps, sizes.train_length),
    "flip_flop": (sizes.flip_steps, sizes.flip_length),
  }
  scale = (sizes.batch / 128) * (sizes.hidden / 32)
  total = 0.0
  for part, cell in runs_of(sizes):
    n, length = steps[part]
    ms = VARIANTS[cell].ms_per_step * max(scale, 0.25) * length / 40
    total += n * ms / 1000 + _OVERHEAD_S * max(scale, 0.2) ** 0.5
  return total * _SHARED


def run(
  sizes: Sizes = FULL,
  *,
  key: PRNGKeyArray,
  progress: Callable[[str], None] | None = None,
  bar: bool = False,
) -> Result:
  """Train every cell of every part and measure it (E1-E5 of issue 19).

  Seed ``s`` of a part is ``fold_in(fold_in(key, part), s)``, the same for every cell and
  learning rate, so runs with the same seed see the same batches. Parity, cycle navigation
  and flip-flop train with :func:`gatejax.train.fit` (one compiled step per cell and shape);
  accuracy by length with :func:`gatejax.train.accuracy_by_length`.

  Args:
    sizes: a :class:`Sizes` (:data:`FULL`, :data:`REPORT`, :data:`QUICK`).
    key: the PRNG key of every run.
    progress: called with a one-line message as each run starts.
    bar: show a tqdm progress bar over the runs.

  Returns:
    A :class:`Result`.
  """
  check_sizes(sizes)
  say = progress or (lambda message: None)
  began = time.perf_counter()
  todo = runs_of(sizes)
  counter = None
  if bar:
    from tqdm.auto import tqdm

    counter = tqdm(total=len(todo), desc="state tracking", unit="run")
  done = [0]

  def each(part: str, index: int, cells: tuple[str, ...], one: Callable[..., Any]) -> tuple:
    out = []
    for cell in cells:
      for lr in sizes.learning_rates:
        for seed in range(seeds_of(sizes, part, cell)):
          done[0] += 1
          say(f"state tracking {done[0]}/{len(todo)}: {part}, {label(cell)}, lr {lr}, seed {seed}")
          k = jax.random.fold_in(jax.random.fold_in(key, index), seed)
          try:
            out.append(one(cell, seed, lr, k))
          except Exception as e:
            say(f"state tracking: {label(cell)} raised {type(e).__name__}: {e}")
            out.append(_failed(part, cell, seed, lr, sizes, f"{type(e).__name__}: {e}"))
          if counter is not None:
            counter.update(1)
    return tuple(out)

  parity = tasks.parity(sizes.train_length)
  cycle = tasks.cycle_navigation(sizes.train_length, 5)

  def on_parity(cell: str, seed: int, lr: float, k: PRNGKeyArray) -> Run:
    return _last_step_run(cell, parity, 2, seed, lr, sizes.parity_steps, sizes, k)

  def on_cycle(cell: str, seed: int, lr: float, k: PRNGKeyArray) -> Run:
    return _last_step_run(cell, cycle, 5, seed, lr, sizes.cycle_steps, sizes, k)

  def on_flip(cell: str, seed: int, lr: float, k: PRNGKeyArray) -> FlipRun:
    return _flip_run(cell, seed, lr, sizes, k)

  try:
    result = Result(
      sizes=sizes,
      parity=each("parity", 0, sizes.parity_cells, on_parity),
      cycle=each("cycle", 1, sizes.cycle_cells, on_cycle),
      flip_flop=each("flip_flop", 2, sizes.flip_cells, on_flip),
      stability=each("stability", 0, sizes.stability_cells, on_parity),
    )
  finally:
    if counter is not None:
      counter.close()
  return result._replace(seconds=time.perf_counter() - began)


def by_cell(runs: tuple[Any, ...]) -> Mapping[str, list[Any]]:
  """Runs grouped by cell, in the order they were run."""
  out: dict[str, list[Any]] = {}
  for r in runs:
    out.setdefault(r.cell, []).append(r)
  return out
