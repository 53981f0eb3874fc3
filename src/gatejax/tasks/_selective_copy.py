"""Selective copying: a few data tokens scattered among noise, to be copied in order at the end."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from gatejax.tasks._base import (
  Batch,
  Task,
  _check_int,
  _choose,
  _one_hot,
  _Spec,
  _task,
  _uniform_int,
)


def selective_copy(length: int = 256, num_tokens: int = 8, vocab: int = 10) -> Task:
  r"""Selective copying (Gu & Dao 2023, Mamba §4.1): copy the data tokens, skipping the noise.

  Follows ``torch_copying_data(L, M, A, variable=True)`` of ``state-spaces/s4``
  (``src/dataloaders/datasets/copying.py``), with ``M = num_tokens``, ``A = vocab``, and
  ``length`` counting every step (``L = length − 2M`` noise tokens), tokens fed one-hot
  over ``vocab``:

  * ``M`` data tokens uniform in ``{1, …, vocab − 2}`` at ``M`` distinct positions drawn
    uniformly among the first ``length − M`` steps (kept in order of position); token
    0 (noise) at the other steps there;
  * then ``M`` markers, token ``vocab − 1``.

  The model must output the data tokens in order, one per marker step: ``targets`` holds
  them at the last ``M`` steps (0 elsewhere), and ``Batch.mask`` is True exactly there
  (s4 reads its prediction from the last ``M`` outputs too). Unlike the plain copy task
  (:func:`copy_memory`) the gaps vary, so a fixed delay line cannot solve it: the
  model must select by content.

  ``sample(..., length=n)`` draws ``n`` steps with the same ``M`` (more noise),
  ``n >= 2M``.

  Chance ``1/(vocab − 2)`` (guessing among the data tokens); baseline the uniform
  prediction over them, :math:`\log(\text{vocab} - 2)`.

  Args:
    length: the number of steps, >= ``2 * num_tokens``.
    num_tokens: ``M``, the data tokens to copy, >= 1.
    vocab: ``A``, the number of tokens (noise, ``A − 2`` data tokens, the marker), >= 4.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"selective_copy"``: input ``vocab``, output
    ``vocab`` (logits), readout ``"all"``, classification, targets ``(time, batch)``
    int32, with a mask.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> batch = tasks.selective_copy(12, num_tokens=3, vocab=6).sample(jax.random.key(0), 1)
    >>> jnp.argmax(batch.xs[:, 0], axis=-1).tolist()   # noise 0, data 1-4, marker 5
    [1, 4, 0, 0, 0, 0, 0, 0, 1, 5, 5, 5]
    >>> batch.targets[-3:, 0].tolist(), batch.mask[:, 0].tolist()[-4:]
    ([1, 4, 1], [False, True, True, True])
  """
  length = _check_int("length", length, 2)
  num_tokens = _check_int("num_tokens", num_tokens, 1)
  vocab = _check_int("vocab", vocab, 4)
  spec = _SelectiveCopy(length, num_tokens, vocab)
  spec.check_length(length)
  return _task(
    spec,
    time=length,
    input_size=vocab,
    readout="all",
    baseline=math.log(vocab - 2),
    chance=1.0 / (vocab - 2),
  )


@dataclasses.dataclass(frozen=True)
class _SelectiveCopy(_Spec):
  length: int
  num_tokens: int
  vocab: int

  name = "selective_copy"

  @property
  def output_size(self) -> int:
    return self.vocab

  def check_length(self, length: int) -> None:
    if length < 2 * self.num_tokens:
      raise ValueError(
        f"length must be >= 2 * num_tokens = {2 * self.num_tokens} (the tokens and their "
        f"markers), got {length}"
      )

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.length if length is None else length
    m = self.num_tokens
    region = time - m
    u = jax.random.uniform(key, (region + m, batch_size))
    data = _uniform_int(u[region:], 1, self.vocab - 1)  # (M, batch)
    positions = jnp.sort(_choose(u[:region], m), axis=0)
    columns = jnp.arange(batch_size, dtype=jnp.int32)[None, :]
    scattered = jnp.zeros((region, batch_size), jnp.int32).at[positions, columns].set(data)
    markers = jnp.full((m, batch_size), self.vocab - 1, jnp.int32)
    tokens = jnp.concatenate([scattered, markers], axis=0)
    targets = jnp.concatenate([jnp.zeros((region, batch_size), jnp.int32), data], axis=0)
    mask = jnp.broadcast_to((jnp.arange(time) >= region)[:, None], (time, batch_size))
    return Batch(xs=_one_hot(tokens, self.vocab), targets=targets, lengths=None, mask=mask)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (selective_copy,)
