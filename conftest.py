"""Strict numerics for the whole suite, doctests included (after equinox's tests/conftest.py).

* rank promotion raises, so no implicit broadcasting hides a shape bug;
* dtype promotion is strict, so no silent float32 -> float64 mix;
* warnings are errors (pyproject's filterwarnings).

float64 tests opt in with the ``x64`` fixture (``jax.enable_x64``), so the rest of the
suite, the doctests and the notebooks run in JAX's default float32 mode, as users do.

The suite compiles some two thousand small XLA programs and runs each for microseconds, so
compiling is most of its time: XLA is asked to compile quickly rather than to optimise
(``JAX_DISABLE_MOST_OPTIMIZATIONS``, and XLA:CPU's older elemental emitters instead of its
fusion emitters). What changes is the machine code XLA generates, not what the programs
compute: measured on two cores, the whole suite took 17.0 min with XLA's defaults and 7.4
min with these, the same tests passing at the same tolerances. A value already in the
environment is kept: ``JAX_DISABLE_MOST_OPTIMIZATIONS=0`` with
``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true`` runs the suite as XLA compiles by default
(CI's ``gatejax report`` runs the library so, end to end).

One JAX compilation cache serves the whole run: the xdist workers, the notebooks' kernels
and the tests' subprocesses compile many of the same programs (measured on a subset: about
20% less CPU time). It is new for every run, so nothing carries over.

The notebooks are executed by nbmake (``--nbmake`` in pyproject's addopts), each in a fresh
kernel of this environment, at the tiny sizes of ``GATEJAX_QUICK=1``; the committed
notebooks keep the outputs of a full-size run (nbmake never writes them back).
"""

import os
import shutil
import subprocess
import sys
import tempfile

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


# The persistent compilation cache of the run (see the module docstring). A size limit
# turns on JAX's file lock around every read and write: without it a process may read an
# entry that another is still writing, and JAX's warning about it is an error here. The
# lock also makes every write stat every entry, so only programs that took 0.5 s or more
# to compile are kept: a few dozen on the timing subset, which held most of the gain
# (131 s CPU against 122 s with every program cached and 155-177 s with none).
_MIN_COMPILE_SECONDS = 0.5
_MAX_BYTES = 4 * 2**30
_CACHE = {
  "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": str(_MIN_COMPILE_SECONDS),
  "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
  "JAX_COMPILATION_CACHE_MAX_SIZE": str(_MAX_BYTES),
}


# Compile quickly (see the module docstring). The XLA flag is probed in a subprocess first:
# XLA aborts the process on a flag it does not know, and a jaxlib may drop this one.
_FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flags: str) -> bool:
  probe = "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, check=False)
  return done.returncode == 0


def _compile_quickly():
  if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    jax.config.update("jax_disable_most_optimizations", True)  # JAX read it at import
  flags = os.environ.get("XLA_FLAGS", "")
  wanted = f"{flags} {_FAST_COMPILE_FLAG}".strip()
  if "xla_cpu_use_fusion_emitters" not in flags and _xla_accepts(wanted):
    os.environ["XLA_FLAGS"] = wanted  # read when this process first compiles


def pytest_configure(config):
  if os.environ.get("PYTEST_XDIST_WORKER") is None:  # workers inherit the controller's
    _compile_quickly()
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # a cache of the user's own is kept
    directory = tempfile.mkdtemp(prefix="gatejax-tests-jax-cache-")
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    # Set in the environment, so that xdist workers and subprocesses started later share it.
    os.environ.update(_CACHE, JAX_COMPILATION_CACHE_DIR=directory)
    # This process imported JAX before: its options are set directly.
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", _MAX_BYTES)
