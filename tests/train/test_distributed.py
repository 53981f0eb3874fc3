"""More than one process: the multi-host recipe of docs/ecosystem.md, run on localhost.

``examples/distributed.py`` (the script the docs show) trains one model data-parallel over
two processes joined by ``jax.distributed`` (CPU devices, gloo collectives), resumable
through a shared checkpoint directory. Its ``--local`` launcher starts the processes and
watches them. Checked here: two processes train as one process does (float32 rounding),
a process killed mid-run is named by the launcher and takes no one with it into a hang,
and the run then resumes from its last checkpoint to the uninterrupted run's result bit
for bit.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parent.parent.parent
SCRIPT = ROOT / "examples" / "distributed.py"
STEPS = 6  # checkpoints every max(1, 6 // 10) = 1 step
CRASH_AT = 4
# The whole launch, compilation included, on two shared cores; a hang is caught far sooner.
LAUNCH_SECONDS = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  # One compilation cache for every launch: the programs are the same in each.
  return tmp_path_factory.mktemp("jax-cache")


def _launch(cache, processes, directory, out=None, *extra):
  env = dict(os.environ)
  env.update(
    JAX_COMPILATION_CACHE_DIR=str(cache),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    # The two processes compile the same programs at once; a size limit makes JAX lock the
    # cache's files, so that neither reads an entry the other is still writing.
    JAX_COMPILATION_CACHE_MAX_SIZE=str(2**30),
    PYTHONWARNINGS="error",
  )
  # One CPU device per process: no forced device count; the suite's other flags are kept.
  flags = env.pop("XLA_FLAGS", "").split()
  kept = [f for f in flags if "xla_force_host_platform_device_count" not in f]
  if kept:
    env["XLA_FLAGS"] = " ".join(kept)
  command = [sys.executable, str(SCRIPT), "--local", str(processes), "--steps", str(STEPS)]
  command += ["--checkpoints", str(directory), *(["--out", str(out)] if out else []), *extra]
  began = time.monotonic()
  done = subprocess.run(
    command, env=env, capture_output=True, text=True, timeout=LAUNCH_SECONDS, check=False
  )
  return done, time.monotonic() - began


def _result(done, out):
  assert done.returncode == 0, f"launch failed:\n{done.stdout}\n{done.stderr[-4000:]}"
  return json.loads(out.read_text())


@pytest.fixture(scope="module")
def one_process(cache, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("one")
  done, _ = _launch(cache, 1, tmp / "run", tmp / "out.json")
  return _result(done, tmp / "out.json")


@pytest.fixture(scope="module")
def two_processes(cache, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("two")
  done, _ = _launch(cache, 2, tmp / "run", tmp / "out.json")
  return _result(done, tmp / "out.json")


def _relative(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_two_processes_train_as_one_process(one_process, two_processes):
  assert (one_process["processes"], one_process["devices"]) == (1, 1)
  assert (two_processes["processes"], two_processes["devices"]) == (2, 2)
  assert len(two_processes["loss"]) == STEPS
  # The gradient sums over the two halves of each batch run in another order: float32
  # rounding, measured 1e-8 (parameters) and 1.3e-7 (worst step's loss).
  params = [
    np.concatenate([np.ravel(x) for x in r["params"]]) for r in (two_processes, one_process)
  ]
  assert _relative(*params) <= 1e-6
  for a, b in zip(two_processes["loss"], one_process["loss"], strict=True):
    assert abs(a - b) <= 1e-6 * abs(b)
  assert _relative(two_processes["eval_loss"], one_process["eval_loss"]) <= 1e-6


def test_a_dead_process_is_named_and_the_run_resumes_bit_for_bit(cache, tmp_path, two_processes):
  run = tmp_path / "run"
  done, seconds = _launch(cache, 2, run, None, "--crash-at", str(CRASH_AT))
  assert done.returncode == 1
  assert "launcher: process 1 of 2 died (killed by SIGKILL); stopping the others" in done.stdout
  # Named and stopped at once, not after the survivor's own heartbeat timeout (20 s) on
  # top of the run: the whole launch, compilation included, stays well inside the limit.
  assert seconds < LAUNCH_SECONDS / 2
  saved = sorted(int(p.name) for p in run.iterdir() if p.name.isdigit())
  assert saved and max(saved) <= CRASH_AT  # nothing past the crash
  done, _ = _launch(cache, 2, run, tmp_path / "out.json")
  resumed = _result(done, tmp_path / "out.json")
  assert resumed == two_processes  # losses, evaluations and parameters, bit for bit


def test_the_docs_show_the_tested_script():
  """docs/ecosystem.md holds examples/distributed.py verbatim, so the recipe read is the one run."""
  docs = (ROOT / "docs" / "ecosystem.md").read_text()
  assert f"```python\n{SCRIPT.read_text()}```" in docs
