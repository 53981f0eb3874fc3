"""Parity, modular arithmetic and cycle navigation: what SPEC §7 and their generators fix.

The generic suite (test_task_suite.py) already checks each against a hand-written solver
at training lengths and beyond; here are the facts particular to each: the defaults of
SPEC §7, the token layouts, left-to-right evaluation, odd lengths, and the documented
label distributions.
"""

import math

import jax
import numpy as np
import pytest
from task_registry import many, solve_modular, tokens_of

from gatejax import tasks


def test_defaults_are_spec_7():
  parity, modular, cycle = tasks.parity(), tasks.modular_arithmetic(), tasks.cycle_navigation()
  assert (parity.time, parity.input_size, parity.output_size, parity.chance) == (40, 2, 2, 0.5)
  assert (modular.time, modular.input_size, modular.output_size) == (39, 9, 5)
  assert modular.chance == pytest.approx(0.2)
  assert (cycle.time, cycle.input_size, cycle.output_size) == (40, 3, 5)
  assert cycle.chance == pytest.approx(0.2)
  for task in (parity, modular, cycle):
    assert task.readout == "last" and task.kind == "classification"
    assert task.baseline == pytest.approx(math.log(task.output_size))


def test_modular_arithmetic_layout():
  """Numbers at even steps, one of + - · at odd ones (uniformly), never the blank."""
  modulus = 5
  batch = many(tasks.modular_arithmetic(10, modulus=modulus), 64)
  tokens = tokens_of(batch.xs)
  lengths = np.asarray(batch.lengths)
  assert (lengths % 2 == 1).all()
  numbers, operators = [], []
  for b in range(tokens.shape[1]):
    sequence = tokens[: lengths[b], b]
    numbers += sequence[0::2].tolist()
    operators += sequence[1::2].tolist()
  assert set(numbers) == set(range(modulus))
  counts = np.bincount(np.array(operators) - modulus, minlength=4)
  assert counts[3] == 0  # the blank
  expected = len(operators) / 3
  assert np.all(np.abs(counts[:3] - expected) < 5 * math.sqrt(expected)), counts


def test_modular_arithmetic_is_left_to_right_not_by_precedence():
  """The labels are the left-to-right values, which differ from precedence for some strings."""
  modulus = 5
  batch = tasks.modular_arithmetic(9, modulus=modulus).sample(jax.random.key(0), 256, length=9)
  np.testing.assert_array_equal(batch.targets, solve_modular(modulus)(batch.xs))
  symbols = {modulus: "+", modulus + 1: "-", modulus + 2: "*"}
  by_precedence = [
    eval("".join(symbols.get(int(t), str(int(t))) for t in sequence)) % modulus
    for sequence in tokens_of(batch.xs).T
  ]
  assert np.mean(np.asarray(batch.targets) != np.array(by_precedence)) > 0.3


def test_modular_arithmetic_label_distribution():
  """Labels follow the exact distribution of left-to-right evaluation, which favours 0.

  Reference: the Markov chain of the running value (uniform start; each step a uniform
  operator and operand), over the uniform number of operators of a training string.
  """
  m, max_length = 5, 9
  step = np.zeros((m, m))
  for value in range(m):
    for operand in range(m):
      for result in ((value + operand) % m, (value - operand) % m, (value * operand) % m):
        step[value, result] += 1 / (3 * m)
  expected = np.zeros(m)
  state = np.full(m, 1 / m)
  operators = range((max_length - 1) // 2 + 1)
  for _ in operators:
    expected += state / len(operators)
    state = state @ step
  batch = many(tasks.modular_arithmetic(max_length, modulus=m), 128)
  n = batch.targets.shape[0]
  observed = np.bincount(np.asarray(batch.targets), minlength=m) / n
  assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / n))
  assert expected.argmax() == 0 and expected[0] > 0.24  # a constant 0 beats chance (0.2)


def test_cycle_navigation_moves():
  """Token a moves by a - 1 (Deletang's actions - 1): check on sequences of one action."""
  batch = tasks.cycle_navigation(8, modulus=5).sample(jax.random.key(0), 64, length=1)
  actions = tokens_of(batch.xs)[0]
  np.testing.assert_array_equal(batch.targets, (actions - 1) % 5)
  assert set(actions.tolist()) == {0, 1, 2}


def test_parity_bits_and_labels():
  batch = tasks.parity(8).sample(jax.random.key(3), 256, length=17)
  bits = tokens_of(batch.xs)
  np.testing.assert_array_equal(batch.targets, bits.sum(axis=0) % 2)
  assert abs(bits.mean() - 0.5) < 5 * math.sqrt(0.25 / bits.size)
