"""Length generalisation: a trained model's accuracy at lengths it may never have seen (SPEC §7).

A task samples at its training lengths by default and at exactly ``length`` steps when asked
(:mod:`gatejax.tasks`), so one task value serves both: train on short sequences, then measure
:func:`accuracy_by_length` far beyond them, where a recurrence that only *approximates* a
state machine fails (the state-tracking experiment, SPEC §8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.train._checks as checks
from gatejax.cells import Cell
from gatejax.run.options import ScanOptions, resolve_options
from gatejax.tasks import Task
from gatejax.train.model import ModelParams
from gatejax.train.state import TrainState, evaluate

__all__ = ["accuracy_by_length"]


def _lengths(lengths: Any) -> tuple[int, ...]:
  values = np.asarray(lengths)
  if values.size == 0:
    raise ValueError(f"lengths must be ints >= 1, at least one, got {lengths!r}")
  if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
    raise TypeError(f"lengths must be a sequence of ints, got {lengths!r:.80}")
  if values.min() < 1:
    raise ValueError(f"lengths must be ints >= 1, got {values.tolist()}")
  return tuple(int(n) for n in values)


def accuracy_by_length(
  cell: Cell,
  task: Task,
  state: TrainState | ModelParams,
  lengths: Sequence[int],
  *,
  key: PRNGKeyArray,
  batch_size: int,
  options: ScanOptions | None = None,
  progress: bool = False,
) -> Float[Array, " lengths"]:
  r"""The task's metric (accuracy) of a trained model at each of ``lengths``.

  Point ``i`` scores ``task.sample(fold_in(key, i), batch_size, length=lengths[i])`` with
  ``task.metric`` (on a masked task, over its scored steps), one jitted evaluation per length
  (a length's program is compiled once and reused by later calls). With
  ``task.chance`` beside it, :func:`gatejax.tasks.scaled_accuracy` gives
  :math:`(acc - chance)/(1 - chance)`.

  Args:
    cell: the model's cell.
    task: a task with a metric; ``sample(..., length=n)`` must accept every length (an even
      length of :func:`gatejax.tasks.modular_arithmetic` is a ``ValueError``).
    state: a :class:`~gatejax.train.TrainState` or the model's parameters.
    lengths: the sequence lengths to evaluate at, ints >= 1.
    key: the evaluation key (disjoint from training's if it is a fresh one).
    batch_size: sequences per length.
    options: a :class:`~gatejax.ScanOptions` for the run of the sequence.
    progress: show a progress bar over the lengths.

  Returns:
    ``(len(lengths),)`` float32: the metric at each length.

  Example:
    >>> import jax, gatejax as gj
    >>> task, cell = gj.tasks.parity(max_length=8), gj.gru(8)
    >>> params = gj.train.init_model(cell, task, jax.random.key(0))
    >>> acc = gj.train.accuracy_by_length(
    ...   cell, task, params, [4, 16], key=jax.random.key(1), batch_size=32
    ... )
    >>> acc.shape
    (2,)
  """
  checks.cell_and_task(cell, task)
  checks.scan_options(options)
  if task.metric is None:
    raise ValueError(f"task {task.name!r} has no metric to measure by length")
  options = resolve_options(options)
  steps = _lengths(lengths)
  checks.positive_int("batch_size", batch_size)
  params = state.params if isinstance(state, TrainState) else state
  points = range(len(steps))
  if progress:
    from tqdm.auto import tqdm

    points = tqdm(points, desc=f"{task.name} by length", unit="length")
  values = []
  for i in points:
    batch = task.sample(jax.random.fold_in(key, i), batch_size, length=steps[i])
    values.append(evaluate(cell, task, params, batch, options=options).metric)
  return jnp.stack(values).astype(jnp.float32)
