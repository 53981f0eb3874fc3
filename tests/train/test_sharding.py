"""gatejax.train.sharding: sharded equals single-device (4 forced host devices, in a subprocess).

The main test process keeps JAX's one CPU device (other test files assume it), so every
check that needs several devices runs in ONE subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; it prints the measured
disagreements as JSON and the test asserts on them here.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import tasks, train

# Relative disagreement allowed between a sharded and a single-device computation: the
# sums over the batch run in another order, so the results differ by float32 rounding
# (eps = 1.2e-7) accumulated over a few dozen terms, never by more than ~1e-6.
FLOAT32_ROUNDING = 1e-5

_SCRIPT = textwrap.dedent(
  """
  import json
  import jax, jax.numpy as jnp, numpy as np
  jax.config.update("jax_numpy_rank_promotion", "raise")
  jax.config.update("jax_numpy_dtype_promotion", "strict")
  import gatejax as gj
  from gatejax import analysis, tasks, train

  def rel(a, b):
    a = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(a)])
    b = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(b)])
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))

  def specs(tree):
    return sorted({str(x.sharding.spec) for x in jax.tree.leaves(tree)})

  out = {"devices": jax.device_count()}
  mesh = train.data_mesh()
  # Variable lengths, so the per-sequence lengths are sharded too.
  cell, task = gj.lstm(6), tasks.adding(8, variable_length=True)
  opt = train.make_optimizer(learning_rate=1e-2)
  state = train.init_state(cell, task, jax.random.key(0), opt)

  # loss and gradients of the same batch, sharded over 4 devices vs on one
  batch = train.batch_for_step(task, state, 8)
  value_and_grad = jax.jit(jax.value_and_grad(lambda p, b: train.loss_fn(cell, task, p, b)))
  loss_1, grads_1 = value_and_grad(state.params, batch)
  sharded = train.shard_batch(batch, mesh)
  out["batch_specs"] = [str(x.sharding.spec) for x in sharded if x is not None]
  out["shards_per_array"] = len(sharded.xs.addressable_shards)
  loss_4, grads_4 = value_and_grad(train.replicate(state.params, mesh), sharded)
  out["loss"] = rel(loss_4, loss_1)
  out["grads"] = rel(grads_4, grads_1)
  # each device differentiates its own sequences; the compiler sums the gradients across them
  hlo = value_and_grad.lower(train.replicate(state.params, mesh), sharded).compile().as_text()
  out["all_reduce"] = "all-reduce" in hlo

  # training: train.fit on the mesh vs on one device (same key, same batches)
  run = dict(key=jax.random.key(2), steps=2, batch_size=8, optimizer=opt, eval_every=1,
             eval_batch_size=8, progress=False)
  single = train.fit(cell, task, **run)
  data_parallel = train.fit(cell, task, mesh=mesh, **run)
  out["fit_loss"] = rel(data_parallel.history.loss, single.history.loss)
  out["fit_eval_loss"] = rel(data_parallel.history.eval_loss, single.history.eval_loss)
  out["fit_params"] = rel(data_parallel.state.params, single.state.params)
  out["fit_opt_state"] = rel(data_parallel.state.opt_state, single.state.opt_state)
  out["fit_state_specs"] = specs(data_parallel.state.params)
  out["fit_steps"] = [single.history.step, data_parallel.history.step]
  # a replicated state saved from the mesh and restored onto it, bit for bit
  import tempfile
  from jax.sharding import NamedSharding, PartitionSpec
  with tempfile.TemporaryDirectory() as directory:
    train.save(directory, data_parallel.state, cell=cell, task=task, optimizer=opt)
    restored = train.restore(
      directory, cell=cell, task=task, optimizer=opt,
      sharding=NamedSharding(mesh, PartitionSpec()),
    ).state
  out["checkpoint_bit_exact"] = all(
    bool((np.asarray(a) == np.asarray(b)).all())
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(data_parallel.state.params))
  )
  out["checkpoint_specs"] = specs(restored.params)
  out["checkpoint_devices"] = len(jax.tree.leaves(restored.params)[0].sharding.device_set)
  # one fit, resumable and data-parallel: crashed in step 3, resumed from the checkpoint of
  # step 2, equal to the uninterrupted data-parallel run bit for bit
  long = dict(run, steps=4)

  def crash(state, history):
    if int(state.step) == 3:
      raise RuntimeError("crash")

  with tempfile.TemporaryDirectory() as directory:
    with train.Checkpoints(directory, cell=cell, task=task, optimizer=opt, every=2) as ckpts:
      try:
        train.fit(cell, task, mesh=mesh, checkpoints=ckpts, callback=crash, **long)
      except RuntimeError:
        pass
      out["resume_saved_steps"] = ckpts.steps()
      resumed = train.fit(cell, task, mesh=mesh, checkpoints=ckpts, **long)
  whole = train.fit(cell, task, mesh=mesh, **long)
  out["resume_bit_exact"] = all(
    bool((np.asarray(a) == np.asarray(b)).all())
    for a, b in zip(jax.tree.leaves((resumed.state.params, resumed.state.opt_state)),
                    jax.tree.leaves((whole.state.params, whole.state.opt_state)))
  ) and resumed.history.loss == whole.history.loss
  out["resume_specs"] = specs(resumed.state)
  # one train_step on the sharded task and the replicated state vs on one device
  s_1, m_1 = train.train_step(cell, task, opt, state, batch_size=8)
  s_4, m_4 = train.train_step(
    cell, train.shard_task(task, mesh), opt, train.replicate(state, mesh), batch_size=8
  )
  out["step_loss"] = rel(m_4.loss, m_1.loss)
  out["step_params"] = rel(s_4.params, s_1.params)
  out["step_state_specs"] = specs(s_4)

  # analysis on a sharded batch
  params = state.params.cell
  xs, lengths = batch.xs, batch.lengths
  xs_4, lengths_4 = train.shard(xs, mesh, dim=1), train.shard(lengths, mesh, dim=0)
  params_4 = train.replicate(params, mesh)
  loss_fn = lambda ys, carry: jnp.sum(ys[-1] ** 2)
  norms_1 = analysis.contribution_norms(cell, params, xs, loss_fn, lengths=lengths)
  norms_4 = analysis.contribution_norms(cell, params_4, xs_4, loss_fn, lengths=lengths_4)
  out["contribution_norms"] = rel(norms_4, norms_1)
  jac_1 = analysis.jacobian_norms(cell, params, xs, lengths=lengths)
  jac_4 = analysis.jacobian_norms(cell, params_4, xs_4, lengths=lengths_4)
  out["jacobian_norms"] = rel(jac_4, jac_1)
  out["jacobian_norms_spec"] = str(jac_4.sharding.spec)

  # the seed sweep, seeds split over the 4 devices, vs a loop over seeds on one device
  keys = jax.random.split(jax.random.key(1), 4)
  states, metrics = train.train_many_seeds(
    cell, task, keys, steps=2, batch_size=8, optimizer=opt, mesh=mesh
  )
  out["sweep_specs"] = specs(metrics.loss)
  sweep_params, sweep_loss = [], []
  for i, key in enumerate(keys):
    s = train.init_state(cell, task, jax.random.split(key)[0], opt)
    losses = []
    for _ in range(2):
      s, m = train.train_step(cell, task, opt, s, batch_size=8)
      losses.append(m.loss)
    sweep_params.append(rel(jax.tree.map(lambda x: x[i], states.params), s.params))
    sweep_loss.append(rel(metrics.loss[i], jnp.stack(losses)))
  out["sweep_params"] = max(sweep_params)
  out["sweep_loss"] = max(sweep_loss)
  print("RESULT" + json.dumps(out))
  """
)


# jaxlib 0.10.2's CPU runtime can deadlock, rarely, when several forced host devices run at
# once on few cores (every thread asleep, no collective involved; seen in
# benchmarks/scaling.py, never at these sizes). A watchdog turns a hang into an exit with a
# traceback, and only such an exit is retried, once; any other failure fails the test.
_WATCHDOG_SECONDS = 300
_HANG = "Timeout ("


@pytest.fixture(scope="module")
def four_devices():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
  ).strip()
  env["JAX_PLATFORMS"] = "cpu"
  watchdog = (
    f"import faulthandler; faulthandler.dump_traceback_later({_WATCHDOG_SECONDS}, exit=True)"
  )
  for _ in range(2):
    done = subprocess.run(
      [sys.executable, "-W", "error", "-c", watchdog + _SCRIPT],
      env=env,
      capture_output=True,
      text=True,
      timeout=2 * _WATCHDOG_SECONDS,
      check=False,
    )
    if done.returncode == 0 or _HANG not in done.stderr:
      break
  lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
  assert done.returncode == 0 and lines, f"subprocess failed:\n{done.stdout}\n{done.stderr}"
  return json.loads(lines[-1][len("RESULT") :])


@pytest.mark.slow
def test_subprocess_sees_four_devices_and_shards_the_batch(four_devices):
  assert four_devices["devices"] == 4
  assert four_devices["shards_per_array"] == 4
  assert four_devices["batch_specs"] == ["P(None, 'data', None)", "P('data',)", "P('data',)"]
  assert four_devices["all_reduce"]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["loss", "grads"])
def test_sharded_loss_and_gradients_equal_single_device(four_devices, what):
  assert four_devices[what] <= FLOAT32_ROUNDING


@pytest.mark.slow
@pytest.mark.parametrize("what", ["step_loss", "step_params"])
def test_sharded_train_step_equals_single_device(four_devices, what):
  assert four_devices[what] <= FLOAT32_ROUNDING
  assert four_devices["step_state_specs"] == ["P()"]  # the whole state stays replicated


@pytest.mark.slow
@pytest.mark.parametrize("what", ["fit_loss", "fit_eval_loss", "fit_params", "fit_opt_state"])
def test_data_parallel_fit_equals_single_device_fit(four_devices, what):
  assert four_devices[what] <= FLOAT32_ROUNDING
  assert four_devices["fit_state_specs"] == ["P()"]
  assert four_devices["fit_steps"][0] == four_devices["fit_steps"][1] == [0, 1]


@pytest.mark.slow
def test_replicated_state_checkpoints_and_restores_onto_the_mesh(four_devices):
  assert four_devices["checkpoint_bit_exact"]
  assert four_devices["checkpoint_specs"] == ["P()"]
  assert four_devices["checkpoint_devices"] == 4


@pytest.mark.slow
def test_one_fit_is_resumable_and_data_parallel(four_devices):
  assert four_devices["resume_saved_steps"] == [2]  # every 2 steps; the crash came at step 3
  assert four_devices["resume_bit_exact"]
  assert four_devices["resume_specs"] == ["P()"]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["contribution_norms", "jacobian_norms"])
def test_analysis_accepts_a_sharded_batch(four_devices, what):
  assert four_devices[what] <= FLOAT32_ROUNDING
  assert four_devices["jacobian_norms_spec"] == "P(None, 'data')"  # per sequence, still split


@pytest.mark.slow
@pytest.mark.parametrize("what", ["sweep_params", "sweep_loss"])
def test_sharded_seed_sweep_equals_a_loop_over_seeds(four_devices, what):
  assert four_devices[what] <= FLOAT32_ROUNDING
  assert four_devices["sweep_specs"] == ["P('data',)"]


# ---------------------------------------------------------------------------
# One device (the main process): layout, padding, errors
# ---------------------------------------------------------------------------


def test_batch_sharding_layout():
  mesh = train.data_mesh(1)
  batch = tasks.copy_memory(2, n_symbols=3, copy_length=2).sample(jax.random.key(0), 4)
  spec = train.batch_sharding(batch, mesh)
  assert spec.xs.spec == jax.sharding.PartitionSpec(None, "data", None)
  assert spec.targets.spec == jax.sharding.PartitionSpec(None, "data")  # a label per step
  assert spec.lengths is None


def test_sweep_pads_to_the_device_count_and_drops_the_padding():
  keys = jax.random.split(jax.random.key(0), 3)

  def experiment(key):
    return {"x": jax.random.normal(key, (2,)), "n": jnp.sum(jax.random.uniform(key, (5,)))}

  out = train.sweep(experiment, keys)
  loop = [experiment(k) for k in keys]
  for i, want in enumerate(loop):
    np.testing.assert_allclose(out["x"][i], want["x"], rtol=1e-6)
    np.testing.assert_allclose(out["n"][i], want["n"], rtol=1e-6)


def test_sweep_and_mesh_errors():
  mesh = train.data_mesh(1)
  with pytest.raises(ValueError, match="only 1 devices"):
    train.data_mesh(jax.device_count() + 1)
  with pytest.raises(ValueError, match=r"axis 'seeds' is not an axis"):
    train.sweep(lambda k: k, jax.random.split(jax.random.key(0), 2), mesh=mesh, axis="seeds")
  with pytest.raises(TypeError, match="fn must be callable"):
    train.sweep(None, jax.random.split(jax.random.key(0), 2))  # type: ignore[arg-type]
  with pytest.raises(TypeError, match=r"mesh must be a jax\.sharding\.Mesh"):
    train.shard(jnp.zeros((2, 2)), "cpu", dim=0)  # type: ignore[arg-type]
  cell, task = gj.rnn(2), tasks.adding(3)
  with pytest.raises(ValueError, match=r"axis 'seeds' is not an axis"):
    train.fit(cell, task, key=jax.random.key(0), steps=1, mesh=mesh, axis="seeds")
  with pytest.raises(TypeError, match=r"mesh must be a jax\.sharding\.Mesh"):
    train.fit(cell, task, key=jax.random.key(0), steps=1, mesh="cpu")  # type: ignore[arg-type]
