r"""The built-in cells: one module per family (:mod:`gatejax.cells.classic`,
:mod:`gatejax.cells.minimal`, ...), each factory returning a :class:`Cell`.

:data:`gatejax.cells.names.CELLS` maps each name to its factory. A :class:`Cell` is an
immutable value, a ``NamedTuple`` of pure functions returned by a factory, in the way optax
returns a ``GradientTransformation``; every cell is also a cell of :mod:`gatejax.protocol`,
so a user's own cell runs wherever these run.
"""

from typing import TypeAlias

from gatejax.cells import _kit, names
from gatejax.cells._kit import Cell, Chrono, chrono
from gatejax.cells.names import *  # noqa: F403

#: A gate or candidate function, elementwise on arrays (``jax.nn.sigmoid``, ``jnp.tanh``).
Activation: TypeAlias = _kit.Activation
#: An initial gate bias, written into the parameters by ``init``: a float or :func:`chrono`.
Bias: TypeAlias = _kit.Bias

__all__ = ["Activation", "Bias", "Cell", "Chrono", "chrono"]
__all__ += names.__all__
__all__.remove("CELLS")
__all__.remove("DISPLAY_NAMES")
