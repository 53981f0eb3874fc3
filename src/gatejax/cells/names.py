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

import gatejax.cells.classic as classic
import gatejax.cells.deltanet as deltanet
import gatejax.cells.lru as lru_family  # the module: its factory lru takes the name
import gatejax.cells.mamba as mamba
import gatejax.cells.minimal as minimal
import gatejax.cells.rglru as rglru
import gatejax.cells.xlstm as xlstm
from gatejax.cells._kit import Cell
from gatejax.cells.classic import *  # noqa: F403
from gatejax.cells.deltanet import *  # noqa: F403
from gatejax.cells.lru import *  # noqa: F403
from gatejax.cells.mamba import *  # noqa: F403
from gatejax.cells.minimal import *  # noqa: F403
from gatejax.cells.rglru import *  # noqa: F403
from gatejax.cells.xlstm import *  # noqa: F403

FAMILIES = (classic, minimal, xlstm, rglru, mamba, lru_family, deltanet)

#: name -> factory of every built-in cell (``"gru"`` -> :func:`gatejax.gru`).
CELLS: dict[str, Callable[..., Cell]] = {
  factory.__name__: factory for family in FAMILIES for factory in family.FACTORIES
}

#: name -> how tables and sentences print the cell (``"min_gru"`` -> ``"minGRU"``).
DISPLAY_NAMES: dict[str, str] = {
  name: shown for family in FAMILIES for name, shown in family.DISPLAY_NAMES.items()
}

__all__ = ["CELLS", "DISPLAY_NAMES"]
__all__ += classic.__all__
__all__ += minimal.__all__
__all__ += xlstm.__all__
__all__ += rglru.__all__
__all__ += mamba.__all__
__all__ += lru_family.__all__
__all__ += deltanet.__all__
