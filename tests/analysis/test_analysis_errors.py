"""Numerical edges of the analysis' curve summaries (SPEC §6): a norm curve with NaN or negative
values, and a fitting window of fewer than two steps, are clear ValueErrors.

One table of :class:`error_cases.Case` (tests/error_cases.py).
"""

import jax.numpy as jnp

import gatejax as gj
from error_cases import Case, assert_unique_ids, check, parametrize

CASES = [
  Case(
    "horizon of a curve with NaN",
    lambda: gj.analysis.gradient_horizon(jnp.array([1.0, jnp.nan, 2.0])),
    ValueError,
    r"norms contain NaN \(at time steps \[1\]\)",
  ),
  Case(
    "horizon of negative norms",
    lambda: gj.analysis.gradient_horizon(jnp.array([1.0, -0.5, 2.0])),
    ValueError,
    r"norms must be >= 0 \(norms\), got a minimum of -0\.5",
  ),
  Case(
    "decay_rate with start > stop",
    lambda: gj.analysis.decay_rate(jnp.ones(10), start=6, stop=3),
    ValueError,
    r"needs two of them, got start=6, stop=3",
  ),
  Case(
    "decay_rate over one step",
    lambda: gj.analysis.decay_rate(jnp.ones(10), start=3, stop=4),
    ValueError,
    r"needs two of them, got start=3, stop=4",
  ),
]


@parametrize(CASES)
def test_bad_input_raises_a_clear_error(case):
  check(case)


def test_case_ids_are_unique():
  assert_unique_ids(CASES)
