"""One registry of task values; the generic task suites (test_task_suite.py) parametrize over it.

Each case builds its task afresh (``make()``), so a suite can check that two tasks built
apart are equal. It also carries what the tests know about the task independently of
the library: the classes a scored target can take (``values``), whether targets are
uniform over them, the lengths to draw at, and a hand-written solver: a plain Python loop
that reads the one-hot inputs back as tokens and computes the answer, with no JAX and
nothing from the task but its documented layout.

Add a case here and every generic test (shapes, dtypes, determinism, lengths, masks,
chance and baseline, the solver's perfect score, no retrace) covers it.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gatejax import tasks


class TaskCase(NamedTuple):
  """A task of the registry and what the tests know about it.

  Attributes:
    make: builds the task.
    values: the classes a scored target can take (``None`` for regression).
    uniform: targets are uniform over ``values`` (so no constant guess beats chance).
    lengths: lengths to draw at with ``length=``, past the training range included.
    train_lengths: the training lengths a sequence can have, or ``None`` when every
      training sequence has ``task.time`` steps.
    solve: ``solve(xs) -> answers``: for ``"last"`` tasks ``(batch,)``, for ``"all"``
      ``(time, batch)`` (anything at unscored steps); ``None`` where no loop can (digits).
    uniform_baseline: the baseline is the loss of the uniform prediction over ``values``
      at the scored steps (copy_memory's baseline also scores its blanks).
  """

  make: Callable[[], tasks.Task]
  values: tuple[int, ...] | None
  uniform: bool
  lengths: tuple[int, ...]
  train_lengths: tuple[int, ...] | None
  solve: Callable[[np.ndarray], np.ndarray] | None
  uniform_baseline: bool = True


def many(task: tasks.Task, batches: int, *, batch_size: int = 16, key: int = 5) -> tasks.Batch:
  """``batches`` batches joined along the batch axis: many samples for one compilation."""
  parts = [task.sample(jax.random.key(key * 100_003 + i), batch_size) for i in range(batches)]

  def join(*leaves):
    axis = 0 if leaves[0].ndim == 1 else 1  # per sequence, or time-major
    return jnp.concatenate(leaves, axis=axis)

  return jax.tree.map(join, *parts)


def tokens_of(xs: Any) -> np.ndarray:
  """One-hot inputs ``(time, batch, size)`` as token ids, ``-1`` at all-zero (padding) steps."""
  xs = np.asarray(xs)
  tokens = xs.argmax(-1)
  tokens[xs.sum(-1) == 0] = -1
  return tokens


def solve_parity(xs):
  tokens = tokens_of(xs)
  answers = []
  for b in range(tokens.shape[1]):
    ones = 0
    for token in tokens[:, b]:
      if token < 0:
        break
      ones += token
    answers.append(ones % 2)
  return np.array(answers)


def solve_cycle(modulus):
  def solve(xs):
    tokens = tokens_of(xs)
    answers = []
    for b in range(tokens.shape[1]):
      position = 0
      for token in tokens[:, b]:
        if token < 0:
          break
        position = (position + {0: -1, 1: 0, 2: 1}[int(token)]) % modulus
      answers.append(position)
    return np.array(answers)

  return solve


def solve_modular(modulus):
  operations = {
    modulus: lambda a, b: a + b,
    modulus + 1: lambda a, b: a - b,
    modulus + 2: lambda a, b: a * b,
  }

  def solve(xs):
    tokens = tokens_of(xs)
    answers = []
    for b in range(tokens.shape[1]):
      sequence = [int(t) for t in tokens[:, b] if t >= 0]
      value = sequence[0]
      for operator, operand in zip(sequence[1::2], sequence[2::2], strict=True):
        assert operand < modulus <= operator < modulus + 3
        value = operations[operator](value, operand) % modulus
      answers.append(value)
    return np.array(answers)

  return solve


def solve_flip_flop(xs):
  tokens = tokens_of(xs)
  answers = np.zeros(tokens.shape, np.int64)
  for b in range(tokens.shape[1]):
    memory = None
    for t, token in enumerate(tokens[:, b]):
      if token in (0, 1):  # w0, w1
        memory = int(token)
      elif token == 4:  # r
        answers[t, b] = memory
  return answers


def solve_mqar(num_pairs):
  def solve(xs):
    tokens = tokens_of(xs)
    answers = np.zeros(tokens.shape, np.int64)
    for b in range(tokens.shape[1]):
      context = tokens[: 2 * num_pairs, b]
      memory = dict(zip(context[0::2], context[1::2], strict=True))
      for t in range(2 * num_pairs, tokens.shape[0]):
        answers[t, b] = memory.get(tokens[t, b], 0)
    return answers

  return solve


def solve_selective_copy(num_tokens, vocab):
  def solve(xs):
    tokens = tokens_of(xs)
    answers = np.zeros(tokens.shape, np.int64)
    for b in range(tokens.shape[1]):
      data = [t for t in tokens[:-num_tokens, b] if 0 < t < vocab - 1]
      assert len(data) == num_tokens
      answers[-num_tokens:, b] = data
    return answers

  return solve


def solve_copy(copy_length):
  def solve(xs):
    tokens = tokens_of(xs)
    answers = np.zeros(tokens.shape, np.int64)  # blank until the copy
    answers[-copy_length:] = tokens[:copy_length]
    return answers

  return solve


def solve_adding(xs):
  xs = np.asarray(xs, np.float64)
  return np.array([(xs[:, b, 0] * xs[:, b, 1]).sum() for b in range(xs.shape[1])])


CASES = {
  "adding": TaskCase(
    make=lambda: tasks.adding(12),
    values=None,
    uniform=False,
    lengths=(2, 12, 40),
    train_lengths=None,
    solve=solve_adding,
  ),
  "adding_variable": TaskCase(
    make=lambda: tasks.adding(12, variable_length=True, min_length=4),
    values=None,
    uniform=False,
    lengths=(2, 40),
    train_lengths=tuple(range(4, 13)),
    solve=solve_adding,
  ),
  "copy": TaskCase(
    make=lambda: tasks.copy_memory(7, n_symbols=5, copy_length=4),
    values=tuple(range(1, 6)),
    uniform=True,
    lengths=(9, 40),
    train_lengths=None,
    solve=solve_copy(4),
    uniform_baseline=False,
  ),
  "digits": TaskCase(
    make=lambda: tasks.digits(),
    values=tuple(range(10)),
    uniform=False,
    lengths=(64,),
    train_lengths=None,
    solve=None,
  ),
  "parity": TaskCase(
    make=lambda: tasks.parity(8),
    values=(0, 1),
    uniform=True,
    lengths=(1, 8, 30),
    train_lengths=tuple(range(1, 9)),
    solve=solve_parity,
  ),
  "modular_arithmetic": TaskCase(
    make=lambda: tasks.modular_arithmetic(10, modulus=5),
    values=tuple(range(5)),
    uniform=False,  # a product with 0 is 0: zero is the most frequent answer
    lengths=(1, 9, 31),
    train_lengths=(1, 3, 5, 7, 9),
    solve=solve_modular(5),
  ),
  "cycle_navigation": TaskCase(
    make=lambda: tasks.cycle_navigation(8, modulus=4),
    values=tuple(range(4)),
    uniform=False,  # one move reaches only three of the positions
    lengths=(1, 8, 30),
    train_lengths=tuple(range(1, 9)),
    solve=solve_cycle(4),
  ),
  "flip_flop": TaskCase(
    make=lambda: tasks.flip_flop(16, p_ignore=0.5),
    values=(0, 1),
    uniform=True,
    lengths=(2, 16, 50),
    train_lengths=None,
    solve=solve_flip_flop,
  ),
  "mqar": TaskCase(
    make=lambda: tasks.mqar(24, num_pairs=3, vocab=16),
    values=tuple(range(8, 16)),
    uniform=True,
    lengths=(12, 24, 70),
    train_lengths=None,
    solve=solve_mqar(3),
  ),
  "selective_copy": TaskCase(
    make=lambda: tasks.selective_copy(16, num_tokens=3, vocab=6),
    values=tuple(range(1, 5)),
    uniform=True,
    lengths=(6, 16, 50),
    train_lengths=None,
    solve=solve_selective_copy(3, 6),
  ),
}
NAMES = sorted(CASES)
CLASSIFICATION = [n for n in NAMES if CASES[n].values is not None]
SOLVABLE = [n for n in NAMES if CASES[n].solve is not None]
