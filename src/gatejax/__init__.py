"""gatejax: recurrent cells as pure JAX functions, and the gradient analysis that shows why gates help.

Example:
  >>> import jax, jax.numpy as jnp, gatejax as gj
  >>> cell = gj.gru(32)
  >>> params = cell.init(jax.random.key(0), input_size=8)
  >>> carry, ys = gj.scan(cell, params, jnp.zeros((100, 4, 8)))
  >>> ys.shape
  (100, 4, 32)
"""

import importlib
from typing import Any

from gatejax import affine, cells, protocol, run
from gatejax.affine import Affine
from gatejax.cells import *  # noqa: F403  (every family's cells, params and states)
from gatejax.protocol import CellLike
from gatejax.run import (
  Bidirectional,
  NewtonInfo,
  ScanOptions,
  Stack,
  parallel_scan,
  scan,
  scan_stack,
  scan_with_gates,
  stack,
)

__version__ = "0.1.0"

# Submodules loaded on first use (gj.analysis, gj.train, ...), so `import gatejax` stays
# light: it never imports torch, matplotlib, orbax or flax.nnx.
_LAZY_SUBMODULES = (
  "analysis",
  "dynamics",
  "experiments",
  "interop",
  "nnx",
  "plots",
  "tasks",
  "train",
)


def __getattr__(name: str) -> Any:
  if name in _LAZY_SUBMODULES:
    return importlib.import_module(f"gatejax.{name}")
  raise AttributeError(f"module 'gatejax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted([*globals(), *_LAZY_SUBMODULES])


__all__ = [
  "Affine",
  "Bidirectional",
  "CellLike",
  "NewtonInfo",
  "ScanOptions",
  "Stack",
  "affine",
  "cells",
  "parallel_scan",
  "protocol",
  "run",
  "scan",
  "scan_stack",
  "scan_with_gates",
  "stack",
]
__all__ += cells.__all__
