"""Every built-in cell by name, from each family's own list: a new family is a line here.

Each family module (one file per family) lists its factories as ``FACTORIES`` and its public
names as ``__all__``; this module collects both, so :mod:`gatejax.cells` and :mod:`gatejax`
re-export every family without naming its cells, and experiments and the command line look
cells up by name in :data:`CELLS`.

Example:
  >>> from gatejax.cells.names import CELLS
  >>> CELLS["gru"](8).name
  'gj.gru(8)'
"""

from collections.abc import Callable

from gatejax.cells import classic, mamba, minimal, rglru
from gatejax.cells import lru as lru_family  # the module: its factory lru takes the name
from gatejax.cells._kit import Cell
from gatejax.cells.classic import *  # noqa: F403
from gatejax.cells.lru import *  # noqa: F403
from gatejax.cells.mamba import *  # noqa: F403
from gatejax.cells.minimal import *  # noqa: F403
from gatejax.cells.rglru import *  # noqa: F403

FAMILIES = (classic, minimal, rglru, mamba, lru_family)

#: name -> factory of every built-in cell (``"gru"`` -> :func:`gatejax.gru`).
CELLS: dict[str, Callable[..., Cell]] = {
  factory.__name__: factory for family in FAMILIES for factory in family.FACTORIES
}

__all__ = ["CELLS"]
__all__ += classic.__all__
__all__ += minimal.__all__
__all__ += rglru.__all__
__all__ += mamba.__all__
__all__ += lru_family.__all__
