"""Bad inputs to gatejax.interop (SPEC §6): a PyTorch carry of the wrong shape is refused,
naming ``hx`` and the shape expected.

One table of :class:`error_cases.Case` (tests/error_cases.py).
"""

import jax.numpy as jnp

import gatejax as gj
from error_cases import Case, assert_unique_ids, check, parametrize

CASES = [
  Case(
    "carry_from_torch: c of another shape",
    lambda: gj.interop.carry_from_torch(
      gj.stack(gj.lstm(5), num_layers=2), (jnp.zeros((2, 4, 5)), jnp.zeros((7, 4, 5)))
    ),
    ValueError,
    r"hx\[1\] \(c_0\) must have the shape of hx\[0\] \(h_0\), \(2, 4, 5\), got \(7, 4, 5\)",
  ),
  Case(
    "carry_from_torch: h of another width",
    lambda: gj.interop.carry_from_torch(gj.gru(5), jnp.zeros((1, 4, 6))),
    ValueError,
    r"hx must have shape \(num_layers \* num_directions = 1, \*batch, hidden_size = 5\)",
  ),
]


@parametrize(CASES)
def test_bad_input_raises_a_clear_error(case):
  check(case)


def test_case_ids_are_unique():
  assert_unique_ids(CASES)
