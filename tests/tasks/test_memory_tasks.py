"""Flip-flop, MQAR and selective copying: their generators' layouts and distributions.

The generic suite (test_task_suite.py) checks each against a hand-written solver and
checks that the loss and metric read only the masked steps; here the masks and inputs
are checked against the definitions (Liu et al. 2023; Zoology's ``multiquery_ar``; s4's
``copying.py``) by NumPy loops over the tokens.
"""

import math

import jax
import numpy as np
import pytest
from task_registry import many, tokens_of

from gatejax import tasks

W0, W1, I0, I1, R = range(5)


def test_defaults_are_spec_7():
  flip, recall, copy = tasks.flip_flop(), tasks.mqar(), tasks.selective_copy()
  assert (flip.time, flip.input_size, flip.output_size, flip.chance) == (64, 5, 2, 0.5)
  assert (recall.time, recall.input_size, recall.output_size) == (64, 256, 256)
  assert recall.chance == pytest.approx(1 / 128)
  assert recall.baseline == pytest.approx(math.log(128))
  assert (copy.time, copy.input_size, copy.output_size) == (256, 10, 10)
  assert copy.chance == pytest.approx(1 / 8)
  assert copy.baseline == pytest.approx(math.log(8))
  assert flip == tasks.flip_flop(64, p_ignore=0.8)
  for task in (flip, recall, copy):
    assert task.readout == "all" and task.kind == "classification"


@pytest.mark.parametrize("p_ignore", [0.0, 0.5, 0.8, 1.0])
def test_flip_flop_instructions(p_ignore):
  """First a write, last a read, the middle in proportions ((1-p)/2, (1-p)/2, p); mask = reads."""
  batch = many(tasks.flip_flop(24, p_ignore=p_ignore), 32)
  tokens = tokens_of(batch.xs)
  assert np.isin(tokens[0], [W0, W1]).all() and (tokens[-1] == R).all()
  np.testing.assert_array_equal(batch.mask, tokens == R)
  middle = tokens[1:-1].ravel()
  n = middle.size
  for kinds, p in [
    ((W0, W1), (1 - p_ignore) / 2),
    ((R,), (1 - p_ignore) / 2),
    ((I0, I1), p_ignore),
  ]:
    observed = np.isin(middle, kinds).mean()
    assert abs(observed - p) <= 5 * math.sqrt(p * (1 - p) / n), (kinds, observed, p)
  writes = tokens[np.isin(tokens, [W0, W1])]
  assert abs((writes == W1).mean() - 0.5) < 5 * math.sqrt(0.25 / writes.size)


def test_flip_flop_targets_are_the_last_write():
  batch = tasks.flip_flop(40, p_ignore=0.5).sample(jax.random.key(0), 32)
  tokens, targets, mask = tokens_of(batch.xs), np.asarray(batch.targets), np.asarray(batch.mask)
  for b in range(32):
    for t in np.flatnonzero(mask[:, b]):
      previous = [x for x in tokens[:t, b] if x in (W0, W1)]
      assert targets[t, b] == previous[-1] - W0
  assert (targets[~mask] == 0).all()


def test_mqar_layout():
  """Zoology's layout: distinct keys and values in their halves, then each key asked once."""
  k, vocab, length = 3, 16, 30
  batch = many(tasks.mqar(length, num_pairs=k, vocab=vocab), 8)
  tokens, targets, mask = tokens_of(batch.xs), np.asarray(batch.targets), np.asarray(batch.mask)
  for b in range(tokens.shape[1]):
    keys, values = tokens[0 : 2 * k : 2, b], tokens[1 : 2 * k : 2, b]
    assert len(set(keys)) == k and ((keys >= 1) & (keys < vocab // 2)).all()
    assert len(set(values)) == k and ((vocab // 2 <= values) & (values < vocab)).all()
    queries = np.flatnonzero(mask[:, b])
    assert len(queries) == k
    assert ((queries >= 2 * k) & ((queries - 2 * k) % 2 == 0)).all()
    assert sorted(tokens[queries, b]) == sorted(keys)  # each key asked once
    value_of = dict(zip(keys, values, strict=True))
    assert [targets[q, b] for q in queries] == [value_of[tokens[q, b]] for q in queries]
    assert (targets[~mask[:, b], b] == 0).all()


def test_mqar_query_gaps_follow_the_power_law():
  """With one pair, the query's gap g has probability ∝ 0.01 (g + 1)^(-0.99) (Zoology)."""
  length = 20
  space = (length - 2) // 2
  batch = many(tasks.mqar(length, num_pairs=1, vocab=8), 128)
  gaps = (np.argmax(np.asarray(batch.mask), axis=0) - 2) // 2
  p = 0.01 * np.arange(1, space + 1) ** (0.01 - 1)
  p /= p.sum()
  observed = np.bincount(gaps, minlength=space) / len(gaps)
  se = np.sqrt(p * (1 - p) / len(gaps))
  assert np.all(np.abs(observed - p) < 5 * se + 1e-3), (observed, p)


def test_mqar_fillers_are_uniform_tokens():
  batch = many(tasks.mqar(64, num_pairs=2, vocab=8), 32)
  tokens, mask = tokens_of(batch.xs), np.asarray(batch.mask)
  fillers = tokens[4:][~mask[4:]]
  frequencies = np.bincount(fillers, minlength=8) / fillers.size
  assert np.all(np.abs(frequencies - 1 / 8) < 5 * math.sqrt(1 / 8 * 7 / 8 / fillers.size))


def test_selective_copy_layout():
  """s4's copying data: M tokens in [1, A-2] among noise 0, then M markers A-1; copy in order."""
  m, vocab, length = 3, 6, 20
  batch = many(tasks.selective_copy(length, num_tokens=m, vocab=vocab), 64)
  tokens, targets, mask = tokens_of(batch.xs), np.asarray(batch.targets), np.asarray(batch.mask)
  region = length - m
  assert (tokens[region:] == vocab - 1).all()
  assert mask[region:].all() and not mask[:region].any()
  positions = []
  for b in range(tokens.shape[1]):
    data = np.flatnonzero(tokens[:region, b])
    assert len(data) == m and ((tokens[data, b] >= 1) & (tokens[data, b] <= vocab - 2)).all()
    np.testing.assert_array_equal(targets[region:, b], tokens[data, b])
    positions += data.tolist()
  # Positions are a uniform M-subset of the region: each is taken with probability M/region.
  observed = np.bincount(positions, minlength=region) / tokens.shape[1]
  p = m / region
  assert np.all(np.abs(observed - p) < 5 * math.sqrt(p * (1 - p) / tokens.shape[1]))
