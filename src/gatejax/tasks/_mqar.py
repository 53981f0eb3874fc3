"""Multi-query associative recall: key-value pairs first, then each key asked for its value."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _check_int, _choose, _gumbel, _one_hot, _Spec, _task

# Zoology's default: query gaps follow p(g) ∝ power_a · g^(power_a - 1), g = 1, 2, ...
_POWER_A = 0.01


def mqar(length: int = 64, num_pairs: int = 4, vocab: int = 256) -> Task:
  r"""Multi-query associative recall (Arora, Eyuboglu et al. 2023, Zoology), one token per step.

  Follows ``multiquery_ar`` of ``HazyResearch/zoology`` (``zoology/data/multiquery_ar.py``,
  defaults ``power_a=0.01``, ``random_non_queries=True``, one pass), tokens fed one-hot
  over ``vocab``:

  * the context, steps ``[0, 2K)`` (``K = num_pairs``): ``k_1 v_1 k_2 v_2 …``, keys
    distinct and uniform in ``[1, vocab/2)``, values distinct and uniform in
    ``[vocab/2, vocab)``;
  * the queries: each key once more, at the steps ``2K + 2g`` for ``K`` distinct gaps
    ``g`` in ``[0, (length − 2K) // 2)`` drawn without replacement with probability
    proportional to ``0.01 · (g + 1)^{-0.99}`` (Zoology's power law: most queries
    come soon after the context, a few far); the key at each gap is a random one of the
    ``K``;
  * every other step of the query region holds a token uniform in ``[0, vocab)`` (which
    may happen to be a key, as in Zoology).

  The target of a query is its key's value, at the query's own step (Zoology's labels
  are the next tokens, so its value label sits at the query's position); ``Batch.mask``
  is True exactly at the ``K`` query steps, and ``loss`` and ``metric`` read only them
  (Zoology scores the same positions; its per-example mean equals the pooled accuracy
  here, every example having ``K`` queries).

  ``sample(..., length=n)`` draws ``n`` steps with the same ``K`` pairs, ``n >= 4K``
  (Zoology's ``4K <= input_seq_len``). Zoology also asks for an even length and
  ``vocab > length``; neither is needed here.

  Chance ``1/(vocab/2)`` (guessing among the values); baseline the uniform prediction
  over the values, :math:`\log(\text{vocab}/2)`.

  Args:
    length: the number of steps, >= ``4 * num_pairs``.
    num_pairs: ``K``, the key-value pairs to remember, >= 1.
    vocab: the number of tokens, even, >= ``2 * num_pairs + 2`` (enough distinct keys).

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"mqar"``: input ``vocab``, output ``vocab``
    (logits over every token, as a language model's), readout ``"all"``, classification,
    targets ``(time, batch)`` int32, with a mask.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import tasks
    >>> batch = tasks.mqar(16, num_pairs=2, vocab=20).sample(jax.random.key(0), 1)
    >>> jnp.argmax(batch.xs[:, 0], axis=-1).tolist()   # keys 1-9, values 10-19
    [2, 11, 1, 16, 12, 17, 15, 4, 2, 1, 12, 9, 1, 8, 10, 16]
    >>> jnp.where(batch.mask[:, 0], batch.targets[:, 0], -1).tolist()
    [-1, -1, -1, -1, -1, -1, -1, -1, 11, -1, -1, -1, 16, -1, -1, -1]
  """
  length = _check_int("length", length, 1)
  num_pairs = _check_int("num_pairs", num_pairs, 1)
  vocab = _check_int("vocab", vocab, 4)
  if vocab % 2:
    raise ValueError(f"vocab must be even (keys below vocab/2, values above), got {vocab}")
  if vocab // 2 - 1 < num_pairs:
    raise ValueError(
      f"vocab must be >= 2 * num_pairs + 2 = {2 * num_pairs + 2} ({num_pairs} distinct keys "
      f"in [1, vocab/2)), got {vocab}"
    )
  spec = _Mqar(length, num_pairs, vocab)
  spec.check_length(length)
  return _task(
    spec,
    time=length,
    input_size=vocab,
    readout="all",
    baseline=math.log(vocab // 2),
    chance=1.0 / (vocab // 2),
  )


@dataclasses.dataclass(frozen=True)
class _Mqar(_Spec):
  length: int
  num_pairs: int
  vocab: int

  name = "mqar"

  @property
  def output_size(self) -> int:
    return self.vocab

  def check_length(self, length: int) -> None:
    if length < 4 * self.num_pairs:
      raise ValueError(
        f"length must be >= 4 * num_pairs = {4 * self.num_pairs} ({self.num_pairs} pairs and "
        f"room for their queries), got {length}"
      )

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    time = self.length if length is None else length
    k, half = self.num_pairs, self.vocab // 2
    context = 2 * k
    space = (time - context) // 2  # the possible query gaps
    n_keys, n_values = half - 1, self.vocab - half
    rows = (n_keys, n_values, space, time - context)
    u = jax.random.uniform(key, (sum(rows), batch_size))
    u_keys, u_values, u_gaps, u_filler = jnp.split(u, np.cumsum(rows)[:-1], axis=0)
    keys = 1 + _choose(u_keys, k)  # (K, batch), distinct, in random order
    values = half + _choose(u_values, k)
    log_p = np.log(_POWER_A * np.arange(1, space + 1, dtype=np.float64) ** (_POWER_A - 1))
    gaps = _choose(jnp.asarray(log_p, jnp.float32)[:, None] + _gumbel(u_gaps), k)
    queries = context + 2 * gaps  # (K, batch): key j is asked at queries[j]
    filler = jnp.minimum(jnp.floor(u_filler * self.vocab), self.vocab - 1).astype(jnp.int32)
    columns = jnp.arange(batch_size, dtype=jnp.int32)[None, :]
    pairs = jnp.stack([keys, values], axis=1).reshape(context, batch_size)
    tokens = jnp.concatenate([pairs, filler], axis=0).at[queries, columns].set(keys)
    targets = jnp.zeros((time, batch_size), jnp.int32).at[queries, columns].set(values)
    mask = jnp.zeros((time, batch_size), bool).at[queries, columns].set(True)
    return Batch(xs=_one_hot(tokens, self.vocab), targets=targets, lengths=None, mask=mask)


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (mqar,)
