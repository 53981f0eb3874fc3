"""Every notebook executes, top to bottom, at the tiny sizes of ``GATEJAX_QUICK=1``.

The committed notebooks carry the outputs of a full-size run; here each is executed from a
copy (never rewritten) in a fresh ``python3`` kernel of this environment, and any cell
error fails the test. The four kernels run concurrently, driven by one asyncio loop (each
kernel is its own process, so two cores run two notebooks at once); each notebook still
passes or fails as its own test.
"""

import asyncio
import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


async def _execute(path: pathlib.Path) -> BaseException | None:
  """Run one notebook in its own kernel; the exception of the failing cell, or None."""
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
  )
  try:
    await client.async_execute()  # raises CellExecutionError on the first failing cell
  except Exception as e:
    return e
  errors = [
    out
    for cell in nb.cells
    if cell.cell_type == "code"
    for out in cell.get("outputs", [])
    if out.get("output_type") == "error"
  ]
  return AssertionError(f"{path.name}: error outputs {errors}") if errors else None


async def _execute_all() -> list[BaseException | None]:
  return await asyncio.gather(*(_execute(path) for path in NOTEBOOKS))


@pytest.fixture(scope="module")
def executions():
  # Kernels inherit the environment: quick sizes, and no accelerator for a smoke run.
  saved = {k: os.environ.get(k) for k in ("GATEJAX_QUICK", "JAX_PLATFORMS")}
  os.environ["GATEJAX_QUICK"] = "1"
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  try:
    results = dict(zip(NOTEBOOKS, asyncio.run(_execute_all()), strict=True))
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  return results


def test_every_notebook_exists():
  names = [p.stem for p in NOTEBOOKS]
  assert names == [
    "01_cells",
    "02_vanishing_gradients",
    "03_sigmoid_vs_relu",
    "04_long_range_tasks",
    "05_your_own_cell",
    "06_dynamics",
  ]


def test_committed_notebooks_carry_figures():
  """A reader sees the figures without running anything."""
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    images = [out for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} has no figure in its saved outputs"
    assert all(cell.execution_count for cell in code), f"{path.name} has unexecuted cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, executions):
  error = executions[path]
  if error is not None:
    raise error
