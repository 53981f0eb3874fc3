"""Every notebook executes, top to bottom, at the tiny sizes of ``GATEJAX_QUICK=1``.

The committed notebooks carry the outputs of a full-size run; here each is executed from a
copy (never rewritten) in a fresh ``python3`` kernel of this environment, and any cell
error fails the test.
"""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist():
  names = [p.stem for p in NOTEBOOKS]
  assert names == [
    "01_cells",
    "02_vanishing_gradients",
    "03_sigmoid_vs_relu",
    "04_long_range_tasks",
  ]


def test_committed_notebooks_carry_figures():
  """A reader sees the figures without running anything."""
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    images = [
      out
      for cell in nb.cells
      if cell.cell_type == "code"
      for out in cell.get("outputs", [])
      if "image/png" in out.get("data", {})
    ]
    assert images, f"{path.name} has no figure in its saved outputs"
    assert all(cell.get("outputs") is not None for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
  monkeypatch.setenv("GATEJAX_QUICK", "1")
  # The kernel imports jax afresh: keep it off any accelerator and quiet about it.
  monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
  )
  client.execute()  # raises CellExecutionError on the first failing cell
  errors = [
    out
    for cell in nb.cells
    if cell.cell_type == "code"
    for out in cell.get("outputs", [])
    if out.get("output_type") == "error"
  ]
  assert not errors
