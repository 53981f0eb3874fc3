r"""Data parallelism and seed sweeps on ``jax.sharding``: the same code on one device or many.

Data parallelism splits every batch along its batch axis over a one-dimensional device mesh
and keeps the parameters replicated. Inside ``jax.jit`` the compiler (GSPMD) then runs the
recurrence on each device's share of the sequences and sums the gradient over devices with
one all-reduce, so the result is the single-device result up to the order of that sum
(float32 rounding):

.. math:: \nabla_\theta L = \frac{1}{B} \sum_{d=1}^{D} \sum_{b \in \text{shard}_d} \nabla_\theta \ell_b

Layout (time-major batches, as everywhere in gatejax):

=====================  ===========================  ========================
array                  shape                        partition spec
=====================  ===========================  ========================
``xs``                 ``(time, batch, input)``     ``P(None, "data")``
``targets`` per seq.   ``(batch,)``                 ``P("data")``
``targets`` per step   ``(time, batch)``            ``P(None, "data")``
``lengths``            ``(batch,)``                 ``P("data")``
parameters, optimizer  any                          ``P()`` (replicated)
=====================  ===========================  ========================

Seed sweeps (:func:`sweep`, :func:`train_many_seeds`) ``jax.vmap`` an experiment over a
vector of PRNG keys and split that seed axis over the mesh instead: independent runs, no
communication at all.

Multi-host: call ``jax.distributed.initialize()`` first in every process (one per host);
``jax.devices()`` then lists the devices of all hosts and :func:`data_mesh` spans them.
Each process runs the same program; a batch drawn inside the jitted step from
``fold_in(key, step)`` is generated directly in its shards, so no host ever holds the
whole batch. See ``docs/ecosystem.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, PRNGKeyArray

from gatejax import train
from gatejax.cells import Cell
from gatejax.run.options import ScanOptions
from gatejax.tasks import Batch, Task

__all__ = [
  "DATA",
  "batch_sharding",
  "data_mesh",
  "fit",
  "replicate",
  "shard",
  "shard_batch",
  "shard_task",
  "sweep",
  "train_many_seeds",
  "train_step",
]

#: The name of the mesh axis that splits the batch, in :func:`data_mesh`'s meshes.
DATA = "data"


def data_mesh(
  num_devices: int | None = None, *, devices: Sequence[Any] | None = None, axis: str = DATA
) -> Mesh:
  """A one-dimensional mesh over ``devices`` (default: all of ``jax.devices()``), axis ``axis``.

  The axis is of type ``Auto``: shardings propagate through the compiled program (GSPMD),
  so the library's code needs no per-op sharding annotations.

  Args:
    num_devices: use the first ``num_devices`` devices (default: all).
    devices: the devices to use, instead of ``jax.devices()``.
    axis: the mesh axis name.

  Example:
    >>> from gatejax import parallel
    >>> mesh = parallel.data_mesh(1)
    >>> dict(mesh.shape)
    {'data': 1}
  """
  pool = list(jax.devices() if devices is None else devices)
  if num_devices is not None:
    if not isinstance(num_devices, int) or isinstance(num_devices, bool) or num_devices < 1:
      raise ValueError(f"num_devices must be an int >= 1, got {num_devices!r}")
    if num_devices > len(pool):
      raise ValueError(f"num_devices={num_devices} but only {len(pool)} devices are available")
    pool = pool[:num_devices]
  return jax.make_mesh(
    (len(pool),), (axis,), axis_types=(jax.sharding.AxisType.Auto,), devices=pool
  )


def _axis(mesh: Mesh, axis: str | None) -> str:
  if not isinstance(mesh, Mesh):
    raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
  if axis is None:
    if len(mesh.axis_names) != 1:
      raise ValueError(f"mesh has axes {mesh.axis_names}: name the data axis with axis=")
    return str(mesh.axis_names[0])
  if axis not in mesh.axis_names:
    raise ValueError(f"axis {axis!r} is not an axis of the mesh {mesh.axis_names}")
  return axis


def _spec(ndim: int, dim: int, axis: str) -> P:
  return P(*([None] * dim), axis, *([None] * (ndim - dim - 1)))


def _check_divisible(size: int, mesh: Mesh, axis: str, what: str) -> None:
  devices = mesh.shape[axis]
  if size % devices:
    raise ValueError(
      f"{what} ({size}) must be a multiple of the {devices} devices on axis {axis!r}"
    )


def _put(x: Any, sharding: NamedSharding) -> Array:
  """``jax.device_put(x, sharding)``, also when ``sharding`` spans the devices of several processes.

  ``device_put`` reaches only this process's devices. Across processes every process
  holds the same ``x`` (the same program on the same key computed it), and each one
  supplies the slices that its own devices hold.
  """
  if sharding.is_fully_addressable:
    return jax.device_put(x, sharding)
  if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):
    data = _put(jax.random.key_data(x), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard(tree: Any, mesh: Mesh, *, dim: int, axis: str | None = None) -> Any:
  """Place every array of ``tree`` on ``mesh`` with its axis ``dim`` split over ``axis``.

  Example:
    >>> import jax.numpy as jnp
    >>> from gatejax import parallel
    >>> xs = parallel.shard(jnp.zeros((10, 8, 3)), parallel.data_mesh(1), dim=1)
    >>> xs.sharding.spec
    P(None, 'data', None)
  """
  axis = _axis(mesh, axis)

  def place(x: Any) -> Array:
    x = jnp.asarray(x)
    if not -x.ndim <= dim < x.ndim:
      raise ValueError(f"cannot split axis {dim} of an array of shape {x.shape}")
    d = dim % x.ndim
    _check_divisible(x.shape[d], mesh, axis, f"axis {d} of an array of shape {x.shape}")
    return _put(x, NamedSharding(mesh, _spec(x.ndim, d, axis)))

  return jax.tree.map(place, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Place every array of ``tree`` on every device of ``mesh`` (``PartitionSpec()``)."""
  if not isinstance(mesh, Mesh):
    raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
  sharding = NamedSharding(mesh, P())
  return jax.tree.map(lambda x: _put(x, sharding), tree)


def batch_sharding(batch: Batch, mesh: Mesh, *, axis: str | None = None) -> Batch:
  """The :class:`~gatejax.tasks.Batch` of ``NamedSharding`` that splits ``batch`` along its batch axis.

  Time-major arrays (``xs``, per-step ``targets``) are split on axis 1, per-sequence
  arrays (``targets`` of shape ``(batch,)``, ``lengths``) on axis 0.
  """
  if not isinstance(batch, Batch):
    raise TypeError(f"batch must be a gatejax.tasks.Batch, got {type(batch).__name__}")
  axis = _axis(mesh, axis)
  size = batch.xs.shape[1]
  _check_divisible(size, mesh, axis, "the batch size")

  def of(x: Any) -> NamedSharding:
    # Per-sequence arrays have the batch first; time-major ones have it second.
    dim = 0 if x.ndim == 1 else 1
    return NamedSharding(mesh, _spec(x.ndim, dim, axis))

  return jax.tree.map(of, batch)


def shard_batch(batch: Batch, mesh: Mesh, *, axis: str | None = None) -> Batch:
  """``batch`` placed on ``mesh``, split along its batch axis (see :func:`batch_sharding`).

  Example:
    >>> import jax
    >>> from gatejax import parallel, tasks
    >>> batch = tasks.adding(10).sample(jax.random.key(0), 8)
    >>> sharded = parallel.shard_batch(batch, parallel.data_mesh(1))
    >>> sharded.xs.sharding.spec, sharded.targets.sharding.spec
    (P(None, 'data', None), P('data',))
  """
  return jax.tree.map(_put, batch, batch_sharding(batch, mesh, axis=axis))


@functools.lru_cache(maxsize=64)
def _shard_task(task: Task, mesh: Mesh, axis: str) -> Task:
  # Cached: an equal (task, mesh, axis) gives the same Task object, so the jitted steps
  # that take the task as a static argument compile once.
  sample = task.sample

  @functools.cache
  def jitted(batch_size: int) -> Callable[[PRNGKeyArray], Batch]:
    # The output shardings make every batch come out split, also one drawn outside a
    # training step (the evaluation set): generated in its shards, which across
    # processes is the only way to make it. Inside a jitted step they constrain the batch.
    shape = jax.eval_shape(lambda key: sample(key, batch_size), jax.random.key(0))
    return jax.jit(
      lambda key: sample(key, batch_size), out_shardings=batch_sharding(shape, mesh, axis=axis)
    )

  def sharded_sample(key: PRNGKeyArray, batch_size: int) -> Batch:
    return jitted(batch_size)(key)

  return task._replace(sample=sharded_sample)


def shard_task(task: Task, mesh: Mesh, *, axis: str | None = None) -> Task:
  """``task`` whose every batch comes split over ``mesh`` along its batch axis.

  This is how the training code of :mod:`gatejax.train` runs data-parallel unchanged:
  ``train.train_step`` and ``train.fit`` draw their batch with ``task.sample`` inside the
  jitted step, and the sharding constraint added here makes each device generate and
  process its share only (JAX's partitionable threefry gives the same numbers however the
  batch is split). With the parameters replicated (:func:`replicate`), the compiler adds
  the all-reduce of the gradients. Everything else about the task (name, sizes, loss,
  baseline, metric, ``dataset``) is unchanged.

  Example:
    >>> import jax
    >>> from gatejax import parallel, tasks
    >>> task = parallel.shard_task(tasks.adding(10), parallel.data_mesh(1))
    >>> task.sample(jax.random.key(0), 8).xs.sharding.spec
    P(None, 'data', None)
  """
  return _shard_task(task, mesh, _axis(mesh, axis))


def _check_batch_size(batch_size: Any, mesh: Mesh, axis: str) -> int:
  if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
    raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
  _check_divisible(batch_size, mesh, axis, "batch_size")
  return batch_size


class _Placement(NamedTuple):
  """Where :func:`gatejax.train.fit` puts a data-parallel run: its mesh and batch axis."""

  mesh: Mesh
  axis: str

  @classmethod
  def of(cls, mesh: Mesh, axis: str | None) -> _Placement:
    return cls(mesh, _axis(mesh, axis))

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def check_batch_size(self, name: str, size: int) -> None:
    _check_divisible(size, self.mesh, self.axis, name)

  def task(self, task: Task) -> Task:
    return shard_task(task, self.mesh, axis=self.axis)

  def replicate(self, tree: Any) -> Any:
    return replicate(tree, self.mesh)


def train_step(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  state: train.TrainState,
  *,
  mesh: Mesh,
  batch_size: int = 64,
  axis: str | None = None,
  options: ScanOptions | None = None,
) -> tuple[train.TrainState, train.StepMetrics]:
  """:func:`gatejax.train.train_step` with the batch split over ``mesh`` and the state replicated.

  It is ``train.train_step`` itself, run on :func:`shard_task` of ``task`` with the state
  placed by :func:`replicate`: the same batch (``fold_in(state.key, state.step)``), so its
  loss, gradients and new state equal the single-device step's up to the order of the
  cross-device sums. With a one-device mesh it is the single-device step.

  Args:
    cell, task, optimizer, state: as in :func:`gatejax.train.train_step`.
    mesh: the device mesh, e.g. :func:`data_mesh`.
    batch_size: sequences per step, a multiple of the number of devices on ``axis``.
    axis: the mesh axis that splits the batch (default: the mesh's only axis).
    options: a :class:`~gatejax.ScanOptions`, as in :func:`gatejax.train.train_step`.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import parallel, tasks, train
    >>> cell, task, opt = gj.gru(8), tasks.adding(10), train.make_optimizer()
    >>> state = train.init_state(cell, task, jax.random.key(0), opt)
    >>> mesh = parallel.data_mesh()
    >>> state, metrics = parallel.train_step(cell, task, opt, state, mesh=mesh, batch_size=16)
    >>> int(state.step)
    1
  """
  axis = _axis(mesh, axis)
  batch_size = _check_batch_size(batch_size, mesh, axis)
  return train.train_step(
    cell,
    shard_task(task, mesh, axis=axis),
    optimizer,
    replicate(state, mesh),
    batch_size=batch_size,
    options=options,
  )


def fit(
  cell: Cell,
  task: Task,
  *,
  mesh: Mesh,
  axis: str | None = None,
  **fit_kwargs: Any,
) -> train.TrainResult:
  """:func:`gatejax.train.fit` with ``mesh=mesh``: the same loop, history and results, data-parallel.

  A thin wrapper kept for reading: ``parallel.fit(cell, task, mesh=mesh, ...)`` is
  ``train.fit(cell, task, mesh=mesh, ...)``, which splits every batch over the mesh
  (:func:`shard_task`), replicates the state on it and can checkpoint the run
  (``checkpoints=``). The result equals the single-device run's up to float32 rounding
  in the gradient sums.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import parallel, tasks
    >>> result = parallel.fit(gj.rnn(4), tasks.adding(5), mesh=parallel.data_mesh(),
    ...                       key=jax.random.key(0), steps=3, batch_size=8,
    ...                       eval_batch_size=8, progress=False)
    >>> len(result.history.loss)
    3
  """
  return train.fit(cell, task, mesh=mesh, axis=axis, **fit_kwargs)


# ---------------------------------------------------------------------------
# Seed sweeps
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _vmapped(fn: Callable[[PRNGKeyArray], Any], mesh: Mesh, axis: str) -> Callable:
  # Cached so that sweeping the same function again reuses its compilation.
  return jax.jit(jax.vmap(fn), out_shardings=NamedSharding(mesh, P(axis)))


def sweep(
  fn: Callable[[PRNGKeyArray], Any],
  keys: PRNGKeyArray,
  *,
  mesh: Mesh | None = None,
  axis: str | None = None,
) -> Any:
  """``jax.vmap(fn)(keys)``, jitted, with the seed axis split over the devices of ``mesh``.

  Every run is independent, so the devices never communicate. When the number of keys is
  not a multiple of the number of devices, the last key is repeated to fill the last
  devices and those extra runs are dropped from the result.

  Args:
    fn: ``fn(key) -> pytree of arrays``, one experiment (traceable).
    keys: a vector of keys, e.g. ``jax.random.split(key, n)``.
    mesh: the devices (default: :func:`data_mesh` over all devices).
    axis: the mesh axis that splits the seeds (default: the mesh's only axis).

  Returns:
    ``fn``'s result with a leading axis of ``len(keys)``, seed ``i`` at index ``i``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from gatejax import parallel
    >>> keys = jax.random.split(jax.random.key(0), 3)
    >>> out = parallel.sweep(lambda k: jax.random.normal(k, (2,)).sum(), keys)
    >>> bool(jnp.allclose(out[1], jax.random.normal(keys[1], (2,)).sum()))
    True
  """
  if not callable(fn):
    raise TypeError(f"fn must be callable as fn(key), got {fn!r}")
  mesh = data_mesh() if mesh is None else mesh
  axis = _axis(mesh, axis)
  keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
  if keys.ndim < 1 or keys.shape[0] < 1:
    raise ValueError(f"keys must be a non-empty vector of keys, got shape {keys.shape}")
  n, devices = keys.shape[0], mesh.shape[axis]
  pad = -n % devices
  if pad:
    keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
  keys = _put(keys, NamedSharding(mesh, _spec(keys.ndim, 0, axis)))
  out = _vmapped(fn, mesh, axis)(keys)
  return jax.tree.map(lambda x: x[:n], out) if pad else out


@functools.lru_cache(maxsize=64)
def _training_run(
  cell: Cell,
  task: Task,
  optimizer: optax.GradientTransformation,
  steps: int,
  batch_size: int,
  options: ScanOptions | None,
) -> Callable[[PRNGKeyArray], tuple[train.TrainState, train.StepMetrics]]:
  def run(key: PRNGKeyArray) -> tuple[train.TrainState, train.StepMetrics]:
    # The seed convention of train.fit: the run key makes the parameters and the data.
    k_run, _ = jax.random.split(key)
    state = train.init_state(cell, task, k_run, optimizer)

    def body(state: train.TrainState, _: None) -> tuple[train.TrainState, train.StepMetrics]:
      return train.train_step(cell, task, optimizer, state, batch_size=batch_size, options=options)

    return jax.lax.scan(body, state, length=steps)

  return run


def train_many_seeds(
  cell: Cell,
  task: Task,
  keys: PRNGKeyArray,
  *,
  steps: int,
  batch_size: int = 64,
  optimizer: optax.GradientTransformation | None = None,
  mesh: Mesh | None = None,
  axis: str | None = None,
  options: ScanOptions | None = None,
) -> tuple[train.TrainState, train.StepMetrics]:
  """Train one model per key, all at once: ``jax.vmap`` over keys, seeds split over devices.

  Run ``i`` is the run of :func:`gatejax.train.fit` with ``key=keys[i]`` (same parameters,
  same batches, same updates; up to float32 rounding, since the batched matrix products
  may round differently), without evaluation or divergence checks.

  Args:
    cell, task: the model and task.
    keys: a vector of ``n`` keys.
    steps: updates per run.
    batch_size: sequences per step.
    optimizer: an optax transformation (default :func:`gatejax.train.make_optimizer`).
    mesh, axis: where to split the seeds, as in :func:`sweep`.
    options: a :class:`~gatejax.ScanOptions`: how every sequence runs.

  Returns:
    ``(states, metrics)``: the final :class:`~gatejax.train.TrainState` of every run
    (leading axis ``n``) and every step's :class:`~gatejax.train.StepMetrics`,
    shape ``(n, steps)``.

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax import parallel, tasks
    >>> keys = jax.random.split(jax.random.key(0), 2)
    >>> states, metrics = parallel.train_many_seeds(gj.rnn(4), tasks.adding(5), keys,
    ...                                             steps=3, batch_size=4)
    >>> metrics.loss.shape, states.params.cell.w_h.shape
    ((2, 3), (2, 4, 4))
  """
  if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
    raise ValueError(f"steps must be an int >= 0, got {steps!r}")
  if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
    raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
  optimizer = train.make_optimizer() if optimizer is None else optimizer
  run = _training_run(cell, task, optimizer, steps, batch_size, options)
  return sweep(run, keys, mesh=mesh, axis=axis)
