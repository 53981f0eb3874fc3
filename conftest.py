"""Strict numerics for the whole suite, doctests included (after equinox's tests/conftest.py).

* rank promotion raises, so no implicit broadcasting hides a shape bug;
* dtype promotion is strict, so no silent float32 -> float64 mix;
* warnings are errors (pyproject's filterwarnings).

float64 tests opt in with the ``x64`` fixture (``jax.enable_x64``), so the rest of the
suite, the doctests and the notebooks run in JAX's default float32 mode, as users do.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
  """Run the test with 64-bit types enabled."""
  with jax.enable_x64(True):
    yield
