"""Strict numerics for the whole suite, doctests included (after equinox's tests/conftest.py).

* rank promotion raises, so no implicit broadcasting hides a shape bug;
* dtype promotion is strict, so no silent float32 -> float64 mix;
* warnings are errors (pyproject's filterwarnings).

float64 tests opt in with the ``x64`` fixture (``jax.enable_x64``), so the rest of the
suite, the doctests and the notebooks run in JAX's default float32 mode, as users do.

The notebooks are executed by nbmake (``--nbmake`` in pyproject's addopts), each in a fresh
kernel of this environment, at the tiny sizes of ``GATEJAX_QUICK=1``; the committed
notebooks keep the outputs of a full-size run (nbmake never writes them back).
"""

import os

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
  """Run the test with 64-bit types enabled."""
  with jax.enable_x64(True):
    yield


# What a notebook's kernel inherits: quick sizes, and no accelerator for a smoke run.
_NOTEBOOK_ENV = {"GATEJAX_QUICK": "1", "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  if item.path.suffix != ".ipynb":
    return (yield)
  saved = {k: os.environ.get(k) for k in _NOTEBOOK_ENV}
  os.environ.update(_NOTEBOOK_ENV)
  try:
    return (yield)
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def pytest_collection_modifyitems(config, items):
  # A notebook is a file, not a function that could carry the marker: each takes 20-40 s.
  for item in items:
    if item.path.suffix == ".ipynb":
      item.add_marker(pytest.mark.slow)
