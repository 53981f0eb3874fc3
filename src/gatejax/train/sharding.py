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

Seed sweeps (:func:`sweep`, and :func:`gatejax.train.train_many_seeds` built on it)
``jax.vmap`` an experiment over a vector of PRNG keys and split that seed axis over the
mesh instead: independent runs, no communication at all.

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
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, PRNGKeyArray

from gatejax.tasks import Batch, Task

__all__ = [
  "DATA",
  "batch_sharding",
  "data_mesh",
  "replicate",
  "shard",
  "shard_batch",
  "shard_task",
  "sweep",
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
    >>> from gatejax import train
    >>> mesh = train.data_mesh(1)
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
    >>> from gatejax import train
    >>> xs = train.shard(jnp.zeros((10, 8, 3)), train.data_mesh(1), dim=1)
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
    >>> from gatejax import tasks, train
    >>> batch = tasks.adding(10).sample(jax.random.key(0), 8)
    >>> sharded = train.shard_batch(batch, train.data_mesh(1))
    >>> sharded.xs.sharding.spec, sharded.targets.sharding.spec
    (P(None, 'data', None), P('data',))
  """
  return jax.tree.map(_put, batch, batch_sharding(batch, mesh, axis=axis))


@functools.lru_cache(maxsize=64)
def _shard_task(task: Task, mesh: Mesh, axis: str) -> Task:
  # Cached: an equal (task, mesh, axis) gives the same Task object, so the jitted steps
  # that take the task as a static argument compile once.
  sample = task.sample

  @functools.lru_cache(maxsize=64)  # bounded: one program per (batch size, length)
  def jitted(batch_size: int, length: int | None) -> Callable[[PRNGKeyArray], Batch]:
    # The output shardings make every batch come out split, also one drawn outside a
    # training step (the evaluation set): generated in its shards, which across
    # processes is the only way to make it. Inside a jitted step they constrain the batch.
    def draw(key: PRNGKeyArray) -> Batch:
      return sample(key, batch_size, length=length)

    shape = jax.eval_shape(draw, jax.random.key(0))
    return jax.jit(draw, out_shardings=batch_sharding(shape, mesh, axis=axis))

  def sharded_sample(key: PRNGKeyArray, batch_size: int, *, length: int | None = None) -> Batch:
    return jitted(batch_size, length)(key)

  return task._replace(sample=sharded_sample)


def shard_task(task: Task, mesh: Mesh, *, axis: str | None = None) -> Task:
  """``task`` whose every batch comes split over ``mesh`` along its batch axis.

  This is how the training code of :mod:`gatejax.train` runs data-parallel unchanged:
  :func:`~gatejax.train.train_step` and :func:`~gatejax.train.fit` draw their batch with
  ``task.sample`` inside the jitted step, and the sharding constraint added here makes
  each device generate and process its share only (JAX's partitionable threefry gives the
  same numbers however the batch is split). With the parameters replicated
  (:func:`replicate`), the compiler adds the all-reduce of the gradients. Everything else
  about the task (name, sizes, loss, baseline, metric, ``dataset``) is unchanged.

  Example:
    >>> import jax
    >>> from gatejax import tasks, train
    >>> task = train.shard_task(tasks.adding(10), train.data_mesh(1))
    >>> task.sample(jax.random.key(0), 8).xs.sharding.spec
    P(None, 'data', None)
  """
  return _shard_task(task, mesh, _axis(mesh, axis))


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
    >>> from gatejax import train
    >>> keys = jax.random.split(jax.random.key(0), 3)
    >>> out = train.sweep(lambda k: jax.random.normal(k, (2,)).sum(), keys)
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
