"""Every task by name, from each task file's own list: a new task is a line here.

Each task file lists its factories as ``FACTORIES``; this module collects them, so
experiments and the command line look tasks up by name in :data:`TASKS` (as
``gatejax.cells.names`` does for cells).

Example:
  >>> from gatejax.tasks import names
  >>> sorted(names.TASKS)[:3]
  ['adding', 'copy_memory', 'cycle_navigation']
  >>> names.make("parity", max_length=8) == names.TASKS["parity"](8)
  True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from gatejax.tasks import (
  _adding,
  _copy_memory,
  _cycle_navigation,
  _digits,
  _flip_flop,
  _modular_arithmetic,
  _mqar,
  _parity,
  _selective_copy,
)
from gatejax.tasks._base import Task

__all__ = ["TASKS", "make"]

_FILES = (
  _adding,
  _copy_memory,
  _digits,
  _parity,
  _modular_arithmetic,
  _cycle_navigation,
  _flip_flop,
  _mqar,
  _selective_copy,
)


def _gather() -> Mapping[str, Callable[..., Task]]:
  factories: dict[str, Callable[..., Task]] = {}
  for file in _FILES:
    for factory in file.FACTORIES:
      if factory.__name__ in factories:
        raise RuntimeError(f"two task factories are named {factory.__name__!r}")
      factories[factory.__name__] = factory
  return MappingProxyType(factories)


#: name -> factory of every task of :mod:`gatejax.tasks` (``"parity"`` ->
#: :func:`gatejax.tasks.parity`); read-only.
TASKS: Mapping[str, Callable[..., Task]] = _gather()


def make(name: str, /, **options: Any) -> Task:
  """The task ``TASKS[name](**options)``, with a clear error for an unknown name.

  Args:
    name: a factory's name, a key of :data:`TASKS`.
    **options: the factory's arguments.

  Example:
    >>> from gatejax.tasks import names
    >>> names.make("flip_flop", length=32).time
    32
  """
  if not isinstance(name, str):
    raise TypeError(f"name must be a str, got {type(name).__name__}")
  if name not in TASKS:
    raise ValueError(f"name must be one of {sorted(TASKS)}, got {name!r}")
  return TASKS[name](**options)
