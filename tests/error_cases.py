"""Tables of bad inputs (SPEC §6), shared by the ``test_*_errors.py`` files beside each module's
tests: each bad input raises ValueError or TypeError at trace time, naming the argument.

A case is a description (its test id), a call, the exception type and a regex that the
message must match (the argument's name, and where useful what was expected and received).
A file holds its module's table and runs it with :func:`parametrize` and :func:`check`::

  CASES = [Case("hidden_size zero", lambda: gj.rnn(0), ValueError, r"hidden_size must be")]

  @parametrize(CASES)
  def test_bad_input_raises_a_clear_error(case):
    check(case)

  def test_case_ids_are_unique():
    assert_unique_ids(CASES)
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pytest


class Case(NamedTuple):
  id: str
  call: Callable[[], Any]
  error: type[Exception]
  match: str


def ids(cases: Sequence[Case]) -> list[str]:
  """The test ids of a table: each case's description."""
  return [case.id for case in cases]


def parametrize(cases: Sequence[Case]):
  """``pytest.mark.parametrize`` over a table, one test per case, named by its description."""
  return pytest.mark.parametrize("case", cases, ids=ids(cases))


def check(case: Case) -> None:
  """The call raises the case's exception type with a message matching its regex."""
  with pytest.raises(case.error, match=case.match):
    case.call()


def assert_unique_ids(*tables: Sequence[Case]) -> None:
  """No two cases share a description (pytest would silently number duplicates)."""
  found = [case.id for table in tables for case in table]
  repeated = sorted({i for i in found if found.count(i) > 1})
  assert not repeated, f"case ids used more than once: {repeated}"
