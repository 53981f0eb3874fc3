"""Bad arguments to the tasks (SPEC §6): ValueError or TypeError naming the argument.

One table, as the other error tables (tests/error_cases.py): a description, a call, the
exception type and a regex that the message must match.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import pytest

from gatejax import tasks
from gatejax.tasks import names

KEY = jax.random.key(0)


class Case(NamedTuple):
  id: str
  call: Any
  error: type
  match: str


CASES = [
  # ---- factories
  Case("adding time 1", lambda: tasks.adding(1), ValueError, r"time must be >= 2, got 1"),
  Case("adding time float", lambda: tasks.adding(10.0), TypeError, r"time must be an int"),
  Case("adding min_length alone", lambda: tasks.adding(10, min_length=3), ValueError, "min_length"),
  Case(
    "adding min_length > time",
    lambda: tasks.adding(10, variable_length=True, min_length=11),
    ValueError,
    r"min_length must be <= time=10, got 11",
  ),
  Case(
    "adding variable_length 1",
    lambda: tasks.adding(5, variable_length=1),
    TypeError,
    "variable_length",
  ),
  Case("copy delay 0", lambda: tasks.copy_memory(0), ValueError, r"delay must be >= 1"),
  Case("copy n_symbols 1", lambda: tasks.copy_memory(5, n_symbols=1), ValueError, "n_symbols"),
  Case(
    "copy copy_length 0", lambda: tasks.copy_memory(5, copy_length=0), ValueError, "copy_length"
  ),
  Case("digits split", lambda: tasks.digits(split="valid"), ValueError, r"split.*'valid'"),
  Case(
    "parity max_length 0", lambda: tasks.parity(0), ValueError, r"max_length must be >= 1, got 0"
  ),
  Case(
    "parity max_length float", lambda: tasks.parity(8.0), TypeError, "max_length must be an int"
  ),
  Case(
    "parity max_length bool", lambda: tasks.parity(True), TypeError, "max_length must be an int"
  ),
  Case(
    "modular modulus 1", lambda: tasks.modular_arithmetic(9, 1), ValueError, r"modulus must be >= 2"
  ),
  Case("modular max_length 0", lambda: tasks.modular_arithmetic(0), ValueError, "max_length"),
  Case(
    "cycle modulus str", lambda: tasks.cycle_navigation(9, "5"), TypeError, "modulus must be an int"
  ),
  Case("cycle max_length -1", lambda: tasks.cycle_navigation(-1), ValueError, "max_length"),
  Case("flip_flop length 1", lambda: tasks.flip_flop(1), ValueError, r"length must be >= 2, got 1"),
  Case(
    "flip_flop p_ignore 1.5",
    lambda: tasks.flip_flop(8, 1.5),
    ValueError,
    r"p_ignore must be in \[0, 1\], got 1.5",
  ),
  Case("flip_flop p_ignore nan", lambda: tasks.flip_flop(8, float("nan")), ValueError, "p_ignore"),
  Case(
    "flip_flop p_ignore str",
    lambda: tasks.flip_flop(8, "0.8"),
    TypeError,
    "p_ignore must be a number",
  ),
  Case("mqar num_pairs 0", lambda: tasks.mqar(64, 0), ValueError, r"num_pairs must be >= 1"),
  Case("mqar vocab odd", lambda: tasks.mqar(64, 4, 255), ValueError, r"vocab must be even.*255"),
  Case(
    "mqar vocab too small",
    lambda: tasks.mqar(64, 4, 8),
    ValueError,
    r"vocab must be >= 2 \* num_pairs \+ 2 = 10",
  ),
  Case(
    "mqar length short",
    lambda: tasks.mqar(15, 4, 64),
    ValueError,
    r"length must be >= 4 \* num_pairs = 16 .*, got 15",
  ),
  Case(
    "selective vocab 3",
    lambda: tasks.selective_copy(16, 2, 3),
    ValueError,
    r"vocab must be >= 4, got 3",
  ),
  Case(
    "selective length short",
    lambda: tasks.selective_copy(7, 4),
    ValueError,
    r"length must be >= 2 \* num_tokens = 8 .*, got 7",
  ),
  Case("selective num_tokens 0", lambda: tasks.selective_copy(16, 0), ValueError, "num_tokens"),
  # ---- sample
  Case(
    "batch_size 0",
    lambda: tasks.adding(5).sample(KEY, 0),
    ValueError,
    r"batch_size must be >= 1, got 0",
  ),
  Case(
    "batch_size float",
    lambda: tasks.parity(5).sample(KEY, 2.0),
    TypeError,
    r"batch_size must be an int",
  ),
  Case(
    "length 0",
    lambda: tasks.parity(5).sample(KEY, 2, length=0),
    ValueError,
    r"length must be >= 1, got 0",
  ),
  Case(
    "length float",
    lambda: tasks.mqar(16, 2, 8).sample(KEY, 2, length=16.0),
    TypeError,
    "length must be an int",
  ),
  Case(
    "modular length even",
    lambda: tasks.modular_arithmetic(9).sample(KEY, 2, length=10),
    ValueError,
    r"length must be odd.*got 10",
  ),
  Case(
    "digits length",
    lambda: tasks.digits().sample(KEY, 2, length=32),
    ValueError,
    r"length must be 64 for digits.*got 32",
  ),
  Case(
    "adding length 1",
    lambda: tasks.adding(5).sample(KEY, 2, length=1),
    ValueError,
    r"length must be >= 2",
  ),
  Case(
    "copy length short",
    lambda: tasks.copy_memory(5, copy_length=3).sample(KEY, 2, length=6),
    ValueError,
    r"length must be >= 2 \* copy_length \+ 1 = 7 .*, got 6",
  ),
  Case(
    "flip_flop length 1",
    lambda: tasks.flip_flop(8).sample(KEY, 2, length=1),
    ValueError,
    r"length must be >= 2",
  ),
  Case(
    "mqar length short",
    lambda: tasks.mqar(16, 2, 8).sample(KEY, 2, length=7),
    ValueError,
    r"length must be >= 4 \* num_pairs = 8 .*, got 7",
  ),
  Case(
    "selective length short",
    lambda: tasks.selective_copy(16, 4).sample(KEY, 2, length=7),
    ValueError,
    r"length must be >= 2 \* num_tokens = 8 .*, got 7",
  ),
  # ---- loss, metric, helpers
  Case(
    "adding predictions shape",
    lambda: tasks.adding(5).loss(jnp.zeros((4,)), tasks.adding(5).sample(KEY, 4)),
    ValueError,
    r"predictions for adding must have shape \(4, 1\), got \(4,\)",
  ),
  Case(
    "parity predictions shape",
    lambda: tasks.parity(5).metric(jnp.zeros((4, 3)), tasks.parity(5).sample(KEY, 4)),
    ValueError,
    r"predictions for parity must have shape \(4, 2\), got \(4, 3\)",
  ),
  Case(
    "flip_flop predictions last step only",
    lambda: tasks.flip_flop(8).loss(jnp.zeros((4, 2)), tasks.flip_flop(8).sample(KEY, 4)),
    ValueError,
    r"predictions for flip_flop must have shape \(8, 4, 2\)",
  ),
  Case(
    "scaled_accuracy chance 1",
    lambda: tasks.scaled_accuracy(0.5, 1.0),
    ValueError,
    r"chance must be in \[0, 1\), got 1.0",
  ),
  Case(
    "scaled_accuracy chance None",
    lambda: tasks.scaled_accuracy(0.5, None),
    TypeError,
    "chance must be a number",
  ),
  Case(
    "sequence_accuracy of a regression",
    lambda: tasks.sequence_accuracy(jnp.zeros((4, 1)), tasks.adding(5).sample(KEY, 4)),
    TypeError,
    "sequence_accuracy needs integer targets",
  ),
  Case(
    "names unknown",
    lambda: names.make("parity_check"),
    ValueError,
    r"name must be one of \[.*'parity'.*\], got 'parity_check'",
  ),
  Case("names not a str", lambda: names.make(3), TypeError, "name must be a str"),
  Case("names bad option", lambda: names.make("parity", max_len=3), TypeError, "max_len"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_argument(case):
  with pytest.raises(case.error, match=case.match):
    case.call()
