"""Copy memory: a few symbols to reproduce after a long blank delay."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from gatejax.tasks._base import (
  Batch,
  Task,
  _check_int,
  _check_predictions,
  _one_hot,
  _Spec,
  _task,
  _uniform_int,
  accuracy,
)


def copy_memory(delay: int, *, n_symbols: int = 8, copy_length: int = 10) -> Task:
  r"""The copy-memory task of Arjovsky, Shah & Bengio 2016 (after Hochreiter & Schmidhuber 1997).

  With ``D = delay``, ``K = copy_length`` and ``S = n_symbols``, each sequence has
  ``D + 2K`` steps, one symbol per step, fed one-hot over ``S + 2`` categories:

  ========================  ==============  ===================================
  steps                     input           target
  ========================  ==============  ===================================
  ``[0, K)``                ``K`` symbols   blank
                            uniform in
                            ``{1..S}``
  ``[K, K + D - 1)``        blank ``0``     blank
  ``K + D - 1``             delimiter       blank
                            ``S + 1``
  ``[K + D, D + 2K)``       blank ``0``     the ``K`` symbols, in order
  ========================  ==============  ===================================

  This is the paper's layout (its ``T`` is our ``D``): ``K`` symbols, ``T - 1``
  blanks, the delimiter, ``K`` more blanks; the model must output blanks until the
  delimiter has passed and then reproduce the symbols, ``D + K`` steps after it
  first saw them. The loss is the softmax cross-entropy over every step of every
  sequence (outputs over ``S + 1`` classes: blank and the symbols; the delimiter
  is never a target), so batches have no ``mask``. Baseline: output blanks for
  ``D + K`` steps, then the uniform distribution over the ``S`` symbols, which scores

  .. math:: \frac{K \log S}{D + 2K} \quad (= 10 \log 8 / (T + 20) \text{ in the paper}).

  The metric is the accuracy on the ``K`` copied symbols only (the last ``K`` steps);
  ``chance`` is ``1/S``.

  ``sample(key, batch_size, length=n)`` draws sequences of ``n`` steps: the delay is
  ``n - 2K`` (so ``n >= 2K + 1``); the baseline above is at the task's own delay.

  Args:
    delay: ``D``, the number of steps from the end of the symbols to the delimiter, >= 1.
    n_symbols: ``S``, the alphabet size, >= 2.
    copy_length: ``K``, the number of symbols to remember, >= 1.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"copy"``: input ``S + 2``, output ``S + 1``
    (logits), readout ``"all"``, classification, targets ``(time, batch)`` int32.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> task = tasks.copy_memory(5, n_symbols=4, copy_length=3)
    >>> batch = task.sample(jax.random.key(0), 2)
    >>> batch.xs.shape, batch.targets.shape
    ((11, 2, 6), (11, 2))
    >>> symbols = jnp.argmax(batch.xs, axis=-1)       # the input as integers
    >>> bool((batch.targets[-3:] == symbols[:3]).all())
    True
    >>> symbols[:, 0].tolist()[3:9]                  # blanks, then the delimiter
    [0, 0, 0, 0, 5, 0]
  """
  delay = _check_int("delay", delay, 1)
  n_symbols = _check_int("n_symbols", n_symbols, 2)
  copy_length = _check_int("copy_length", copy_length, 1)
  time = delay + 2 * copy_length
  spec = _CopyMemory(delay, n_symbols, copy_length)
  baseline = copy_length * math.log(n_symbols) / time
  return _task(
    spec,
    time=time,
    input_size=n_symbols + 2,
    readout="all",
    baseline=baseline,
    chance=1.0 / n_symbols,
    name="copy",
  )


@dataclasses.dataclass(frozen=True)
class _CopyMemory(_Spec):
  delay: int
  n_symbols: int
  copy_length: int

  name = "copy"

  @property
  def output_size(self) -> int:
    return self.n_symbols + 1

  def check_length(self, length: int) -> None:
    if length < 2 * self.copy_length + 1:
      raise ValueError(
        f"length must be >= 2 * copy_length + 1 = {2 * self.copy_length + 1} (a delay of at "
        f"least 1), got {length}"
      )

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    k = self.copy_length
    delay = self.delay if length is None else length - 2 * k
    blank, delimiter = 0, self.n_symbols + 1
    symbols = _uniform_int(jax.random.uniform(key, (k, batch_size)), 1, self.n_symbols + 1)
    blanks = jnp.full((delay - 1, batch_size), blank, jnp.int32)
    tail = jnp.full((k, batch_size), blank, jnp.int32)
    marker = jnp.full((1, batch_size), delimiter, jnp.int32)
    inputs = jnp.concatenate([symbols, blanks, marker, tail], axis=0)
    lead = jnp.full((delay + k, batch_size), blank, jnp.int32)
    targets = jnp.concatenate([lead, symbols], axis=0)
    return Batch(xs=_one_hot(inputs, self.n_symbols + 2), targets=targets, lengths=None)

  def metric(self, predictions: Array, batch: Batch) -> Array:
    _check_predictions("copy", predictions, (*batch.targets.shape, self.output_size))
    k = self.copy_length
    return accuracy(predictions[-k:], batch.targets[-k:])


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (copy_memory,)
