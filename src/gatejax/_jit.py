"""``jax.jit`` with static arguments, keeping a bounded number of compiled programs alive.

A jitted function with static arguments compiles once per combination of static values and
argument shapes, and JAX keeps every executable for the life of the function: thousands
of them, each holding some 80 memory maps of machine code. A long notebook that passes a
new ``loss_fn`` lambda to the analysis on every call, or sweeps hidden sizes, would pile
them up until the process hits the kernel's limit on memory maps (65,530 by default) and
crashes ("LLVM: Unable to allocate section memory"), about 770 compilations in.

:func:`bounded_jit` gives each combination of static values and argument shapes its own
jitted function, held in one least-recently-used table shared by the whole library.
Past :data:`MAX_COMPILED` entries the oldest is dropped, and with it its executable (JAX
frees an executable once its function is gone). A dropped program that is needed again
compiles again: correct, only slower. ``GATEJAX_MAX_COMPILED`` sets the bound.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import jax
from jax.api_util import shaped_abstractify

__all__ = ["MAX_COMPILED", "bounded_jit", "compiled_count", "limit", "misses"]

MAX_COMPILED = int(os.environ.get("GATEJAX_MAX_COMPILED", "128"))

_table: collections.OrderedDict[Any, Callable] = collections.OrderedDict()
_lock = threading.Lock()
_limit = [MAX_COMPILED]
_misses = [0]


def compiled_count() -> int:
  """How many jitted programs the library holds now (at most the bound)."""
  return len(_table)


def misses() -> int:
  """How many programs the library has compiled so far: a call whose static values and
  argument shapes were not in the table (the tests check that a call compiles nothing)."""
  return _misses[0]


@contextlib.contextmanager
def limit(n: int) -> Iterator[None]:
  """Hold at most ``n`` compiled programs inside the block (the tests use a small bound)."""
  saved = _limit[0]
  _limit[0] = n
  try:
    _trim()
    yield
  finally:
    _limit[0] = saved


def _trim() -> None:
  while len(_table) > _limit[0]:
    _, dropped = _table.popitem(last=False)
    clear = getattr(dropped, "clear_cache", None)
    if clear is not None:
      clear()


def _abstract(tree: Any) -> tuple[Any, ...]:
  leaves, treedef = jax.tree.flatten(tree)
  return (treedef, *(shaped_abstractify(leaf) for leaf in leaves))


def bounded_jit(*, static_argnames: Sequence[str]) -> Callable[[Callable], Callable]:
  """``functools.partial(jax.jit, static_argnames=...)``, within the library's bound.

  The static arguments must be hashable (they are a key, as for ``jax.jit``).
  """
  static = tuple(static_argnames)

  def decorate(fn: Callable) -> Callable:
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      bound = signature.bind(*args, **kwargs)
      bound.apply_defaults()
      values = {name: bound.arguments.pop(name) for name in static}
      try:
        key = (fn, tuple(values.items()), _abstract(bound.arguments))
        hash(key)
      except TypeError:
        bad = [n for n, v in values.items() if not isinstance(v, Hashable)]
        raise TypeError(
          f"{fn.__name__}: {', '.join(bad) or 'a static argument'} must be hashable "
          "(it keys the compiled program)"
        ) from None
      with _lock:
        jitted = _table.get(key)
        if jitted is None:
          jitted = jax.jit(functools.partial(fn, **values))
          _table[key] = jitted
          _misses[0] += 1
          _trim()
        else:
          _table.move_to_end(key)
      return jitted(**bound.arguments)

    return wrapper

  return decorate
