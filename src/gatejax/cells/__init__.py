r"""The built-in cells: one module per family (:mod:`gatejax.cells.classic`,
:mod:`gatejax.cells.minimal`, ...), each factory returning a :class:`Cell`.

:data:`gatejax.cells.names.CELLS` maps each name to its factory. A :class:`Cell` is an
immutable value, a ``NamedTuple`` of pure functions returned by a factory, in the way optax
returns a ``GradientTransformation``; every cell is also a cell of :mod:`gatejax.protocol`,
so a user's own cell runs wherever these run.
"""

from gatejax.cells import names
from gatejax.cells._kit import Activation, Bias, Cell, Chrono, chrono
from gatejax.cells.names import *  # noqa: F403

__all__ = ["Activation", "Bias", "Cell", "Chrono", "chrono"]
__all__ += names.__all__
__all__.remove("CELLS")
__all__.remove("DISPLAY_NAMES")
