r"""The model a run trains: the cell, then a dense readout of its output.

.. math:: \hat y = h W + b

read at each sequence's last valid step (``task.readout == "last"``) or at every step
(``"all"``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import gatejax.train._checks as _checks
from gatejax.cells import Cell
from gatejax.run import ScanOptions, scan
from gatejax.tasks import Batch, Task

__all__ = ["ModelParams", "Readout", "init_model", "loss_fn", "predict"]


class Readout(NamedTuple):
  """A dense layer from the hidden state to the task's outputs: ``ŷ = h w + b``."""

  w: Float[Array, "hidden output"]
  b: Float[Array, " output"]


class ModelParams(NamedTuple):
  """The parameters of a model: the ``cell``'s own and the ``readout``'s."""

  cell: Any
  readout: Readout


def init_model(cell: Cell, task: Task, key: PRNGKeyArray) -> ModelParams:
  """Initial parameters: ``cell.init`` for the cell, LeCun normal ``w`` and zero ``b`` for the readout.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> params = train.init_model(gj.lstm(8), tasks.adding(10), jax.random.key(0))
    >>> params.cell.w_x.shape, params.readout.w.shape
    ((2, 32), (8, 1))
  """
  _checks.cell_and_task(cell, task)
  k_cell, k_readout = jax.random.split(key)
  w = jax.nn.initializers.lecun_normal()(
    k_readout, (cell.hidden_size, task.output_size), jnp.float32
  )
  return ModelParams(
    cell=cell.init(k_cell, task.input_size),
    readout=Readout(w=w, b=jnp.zeros((task.output_size,), jnp.float32)),
  )


def _dense(h: Array, readout: Readout) -> Array:
  return h @ readout.w + jnp.reshape(readout.b, (1,) * (h.ndim - 1) + readout.b.shape)


def predict(
  cell: Cell, task: Task, params: ModelParams, batch: Batch, *, options: ScanOptions | None = None
) -> Array:
  """The model's predictions for ``batch``: the readout of the last valid or of every output.

  ``options`` (a :class:`~gatejax.ScanOptions`) chooses how the sequence runs, here and in
  every function of :mod:`gatejax.train` that takes it.

  For a ``"last"`` task this is the readout of ``ys[lengths - 1]`` per sequence
  (``ys[-1]`` without lengths), shape ``(batch, output_size)``; for an ``"all"`` task
  the readout of every step, ``(time, batch, output_size)`` (zero hidden state at
  padded steps).

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import tasks, train
    >>> cell, task = gj.gru(8), tasks.copy_memory(5)
    >>> params = train.init_model(cell, task, jax.random.key(0))
    >>> batch = task.sample(jax.random.key(1), 3)
    >>> train.predict(cell, task, params, batch).shape
    (25, 3, 9)
  """
  _, ys = scan(cell, params.cell, batch.xs, lengths=batch.lengths, options=options)
  if task.readout == "all":
    return _dense(ys, params.readout)
  if batch.lengths is None:
    last = ys[-1]
  else:
    # Outputs past a sequence's length are zero, so its last valid output sits at length - 1.
    index = jnp.maximum(batch.lengths - 1, 0)
    last = jnp.take_along_axis(ys, index[None, :, None], axis=0)[0]
  return _dense(last, params.readout)


def loss_fn(
  cell: Cell, task: Task, params: ModelParams, batch: Batch, *, options: ScanOptions | None = None
) -> Float[Array, ""]:
  """``task.loss(predict(cell, task, params, batch), batch)``."""
  return task.loss(predict(cell, task, params, batch, options=options), batch)
