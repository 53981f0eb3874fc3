"""Data-parallel training over several processes with jax.distributed, resumable after a crash.

On a cluster, start one process per host, each with the same arguments but its own
--process-id, and a checkpoint directory that every host can reach:

  python distributed.py --coordinator host0:1234 --processes 2 --process-id 0 --checkpoints /shared/run
  python distributed.py --coordinator host0:1234 --processes 2 --process-id 1 --checkpoints /shared/run

On one machine, --local N starts N such processes on localhost (CPU devices) and watches
them: if one dies, it says which and stops the others. Run the same command again to
resume from the last checkpoint.

  python distributed.py --local 2 --checkpoints /tmp/run
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time


def run(args: argparse.Namespace) -> None:
  import jax

  # Before anything else touches JAX. The heartbeat timeout bounds how long the others
  # wait for a process that died.
  jax.distributed.initialize(
    args.coordinator,
    num_processes=args.processes,
    process_id=args.process_id,
    heartbeat_timeout_seconds=args.timeout,
  )
  import numpy as np

  import gatejax as gj
  from gatejax import tasks, train

  def crash(state: train.TrainState, history: train.History) -> None:
    # A stand-in for a lost host, for the test: this process dies without cleaning up.
    if int(state.step) == args.crash_at and jax.process_index() == args.crash_process:
      os.kill(os.getpid(), signal.SIGKILL)

  result = train.fit(
    gj.gru(16),
    tasks.adding(20),
    key=jax.random.key(0),  # the same key in every process: the same run
    steps=args.steps,
    batch_size=32,  # split over every device of every process
    eval_batch_size=64,
    mesh=train.data_mesh(),  # every device of every process
    checkpoints=args.checkpoints,  # resumes from the latest checkpoint there
    callback=crash if args.crash_at is not None else None,
    progress=False,
  )
  if jax.process_index() == 0 and args.out:  # print and write on one process only
    leaves = jax.tree.leaves(result.state.params)
    summary = {
      "processes": jax.process_count(),
      "devices": jax.device_count(),
      "loss": result.history.loss,
      "eval_loss": result.history.eval_loss,
      "params": [np.asarray(x).ravel().tolist() for x in leaves],
    }
    with open(args.out, "w") as f:
      json.dump(summary, f)
  jax.distributed.shutdown()


def launch(args: argparse.Namespace) -> int:
  """Start args.local processes on localhost and wait; report the first that dies."""
  with socket.socket() as s:  # a free port for the coordinator
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  common = [sys.executable, __file__, "--coordinator", f"localhost:{port}"]
  common += ["--processes", str(args.local), "--timeout", str(args.timeout)]
  for name in ("checkpoints", "steps", "out", "crash_at", "crash_process"):
    if getattr(args, name) is not None:
      common += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
  procs = [subprocess.Popen([*common, "--process-id", str(i)], env=env) for i in range(args.local)]
  start = time.monotonic()
  while True:
    codes = [p.poll() for p in procs]
    failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
    if failed:
      i, code = failed[0], codes[failed[0]]
      how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
      print(f"launcher: process {i} of {args.local} died ({how}); stopping the others", flush=True)
      for p in procs:  # they would wait for the dead one until their heartbeat timeout
        p.terminate()
      for p in procs:
        try:
          p.wait(5)
        except subprocess.TimeoutExpired:
          p.kill()
          p.wait()
      return 1
    if all(code == 0 for code in codes):
      print(f"launcher: {args.local} processes done in {time.monotonic() - start:.1f} s")
      return 0
    time.sleep(0.2)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
  parser.add_argument("--local", type=int, help="start this many processes on localhost")
  parser.add_argument("--coordinator", help="host:port of process 0")
  parser.add_argument("--processes", type=int, help="the number of processes")
  parser.add_argument("--process-id", type=int, help="this process's index")
  parser.add_argument("--checkpoints", help="the run's checkpoint directory (shared)")
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--out", help="write the result as JSON here (process 0)")
  parser.add_argument("--timeout", type=int, default=20, help="seconds to wait for a lost peer")
  parser.add_argument("--crash-at", type=int, help="for tests: die after this step")
  parser.add_argument("--crash-process", type=int, default=1, help="for tests: which dies")
  args = parser.parse_args()
  if args.local:
    return launch(args)
  run(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
