"""The committed notebooks: there, with their figures. Executing them is nbmake's job.

``pytest`` collects every ``notebooks/*.ipynb`` as a test (``--nbmake`` in pyproject's
addopts, ``notebooks`` in its testpaths) and runs it top to bottom in a fresh kernel at the
sizes of ``GATEJAX_QUICK=1`` (the root ``conftest.py``); a cell error fails that notebook's
test. The checks here are of the committed files themselves.
"""

import pathlib

import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_every_notebook_exists():
  names = [p.stem for p in NOTEBOOKS]
  assert names == [
    "01_cells",
    "02_vanishing_gradients",
    "03_sigmoid_vs_relu",
    "04_long_range_tasks",
    "05_your_own_cell",
    "06_dynamics",
    "07_modern_cells",
    "08_state_tracking",
  ]


def test_committed_notebooks_carry_figures():
  """A reader sees the figures without running anything (the docs site shows these outputs)."""
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    images = [out for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} has no figure in its saved outputs"
    assert all(cell.execution_count for cell in code), f"{path.name} has unexecuted cells"


def test_the_suite_executes_the_notebooks(pytestconfig):
  """pytest alone runs them: nbmake is on and the notebooks are among the test paths."""
  if not pytestconfig.getoption("nbmake"):
    pytest.fail("pytest runs without --nbmake: the notebooks would not be executed")
  assert "notebooks" in pytestconfig.getini("testpaths")
