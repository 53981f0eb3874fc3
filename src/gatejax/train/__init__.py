r"""Training any cell on a :class:`~gatejax.tasks.Task` with optax, through :func:`gatejax.scan`.

The model is the cell followed by a dense readout, ``ŷ = h W + b``, applied to the
output at each sequence's last valid step (``task.readout == "last"``) or at every
step (``"all"``). Everything is built around one pure step,

.. math:: (\text{state}_{s+1}, \text{metrics}_s) = \mathrm{train\_step}(\text{state}_s),

whose batch is drawn from ``fold_in(state.key, state.step)``: a
:class:`~gatejax.train.TrainState` holds everything a run depends on, so a run resumed
from a saved state reproduces the uninterrupted run bit for bit.

:func:`~gatejax.train.fit` is the one run: the jitted step in a loop with evaluation,
divergence detection (a run whose loss becomes NaN or explodes is stopped and reported,
never raised), a progress bar and a :class:`~gatejax.train.History`; with
``checkpoints=`` it saves and resumes, with ``mesh=`` it runs data-parallel.

Every name is reached as ``gatejax.train.<name>``; the package's rooms, each building on
the ones above it:

* :mod:`gatejax.train.model`: the cell and its readout (:func:`~gatejax.train.predict`,
  :func:`~gatejax.train.loss_fn`);
* :mod:`gatejax.train.optimizers`: optax, the gradient clipped by its global norm;
* :mod:`gatejax.train.state`: :class:`~gatejax.train.TrainState` and the pure, jitted
  :func:`~gatejax.train.train_step`, :func:`~gatejax.train.evaluate`;
* :mod:`gatejax.train.history`: what a run records;
* :mod:`gatejax.train.lengths`: :func:`~gatejax.train.accuracy_by_length`, a trained model
  at lengths it was not trained on;
* :mod:`gatejax.train.descriptions`: what a checkpoint records about its run;
* :mod:`gatejax.train.checkpoints`: orbax checkpoints, checked against the run;
* :mod:`gatejax.train.sharding`: data parallelism and seed sweeps over devices;
* :mod:`gatejax.train.fitting`: :func:`~gatejax.train.fit` and
  :func:`~gatejax.train.train_many_seeds`, on top.
"""

from gatejax.train.checkpoints import CheckpointError, Checkpoints, Restored, restore, save
from gatejax.train.descriptions import describe, describe_optimizer
from gatejax.train.fitting import TrainResult, fit, train_many_seeds
from gatejax.train.history import History
from gatejax.train.lengths import accuracy_by_length
from gatejax.train.model import ModelParams, Readout, init_model, loss_fn, predict
from gatejax.train.optimizers import make_optimizer, resolve_optimizer
from gatejax.train.sharding import (
  DATA,
  batch_sharding,
  data_mesh,
  replicate,
  shard,
  shard_batch,
  shard_task,
  sweep,
)
from gatejax.train.state import (
  EvalMetrics,
  StepMetrics,
  TrainState,
  apply_gradients,
  batch_for_step,
  evaluate,
  evaluation_batch,
  init_state,
  step_on_batch,
  train_step,
)

__all__ = [
  "DATA",
  "CheckpointError",
  "Checkpoints",
  "EvalMetrics",
  "History",
  "ModelParams",
  "Readout",
  "Restored",
  "StepMetrics",
  "TrainResult",
  "TrainState",
  "accuracy_by_length",
  "apply_gradients",
  "batch_for_step",
  "batch_sharding",
  "data_mesh",
  "describe",
  "describe_optimizer",
  "evaluate",
  "evaluation_batch",
  "fit",
  "init_model",
  "init_state",
  "loss_fn",
  "make_optimizer",
  "predict",
  "replicate",
  "resolve_optimizer",
  "restore",
  "save",
  "shard",
  "shard_batch",
  "shard_task",
  "step_on_batch",
  "sweep",
  "train_many_seeds",
  "train_step",
]
