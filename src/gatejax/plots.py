"""Figures with matplotlib, imported only when a figure is drawn.

Every function returns a ``matplotlib.figure.Figure`` (it never calls ``plt.show``),
with labelled axes, units and a legend, so notebooks display it and the report saves it.
"""

from __future__ import annotations

from typing import Any


def _pyplot() -> Any:
  """matplotlib.pyplot, imported on first use with a non-interactive backend when headless."""
  import matplotlib

  if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
    matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt

  return plt
