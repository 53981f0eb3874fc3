"""What the gates do along a sequence: saturation, dead gates, ``keep + write``, the state's norm."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

import gatejax.run.loop as loop
from gatejax import protocol
from gatejax._jit import bounded_jit
from gatejax.run.options import ScanOptions
from gatejax.run.scan import scan_with_gates

__all__ = ["GateStatistics", "Summary", "gate_statistics"]

Params = Any
Carry = Any


class Summary(NamedTuple):
  """Mean, standard deviation and range of the valid entries of an array."""

  mean: Array
  std: Array
  min: Array
  max: Array


class GateStatistics(NamedTuple):
  r"""What a cell's gates do along a sequence (valid steps only); see :func:`gate_statistics`.

  Every mapping goes from gate name (the cell's ``gate_names``: GRU ``"r", "z"``; LSTM
  ``"i", "f", "o"``; empty for the RNN and for a cell that reports no gates) to a scalar
  fraction over all valid steps, batch elements and units. With no valid step at all
  (``T = 0``, or every length 0) every fraction and summary is NaN, and so is every statistic
  of a gate that is NaN at any valid step (a NaN is neither shut nor open). Each gate is masked
  in its own shape (a gate per head, as mLSTM's, or per unit).

  Attributes:
    near_zero: fraction of activations ``< eps`` (the gate is shut).
    near_one: fraction ``> 1 - eps`` (the gate is wide open).
    dead: fraction exactly ``0``: a ReLU ``gate_fn`` produces these, a sigmoid never does.
    dead_units: fraction of units whose gate is exactly ``0`` at every valid step of every
      sequence (the unit never opens that gate, and receives no gradient through it).
    mean: mean activation.
    keep_plus_write: the keep gate plus the write gate (the cell's ``keep_write``):
      ``f + i`` for the LSTM (free in ``[0, 2]``), ``z + (1 - z)`` for the GRU (1 by
      construction); ``None`` for a cell without one (the RNN).
    hidden_norm: ``(T,)`` mean of ``‖h_t‖_2`` over the sequences still valid at step ``t``
      (0 where none is).
  """

  near_zero: dict[str, Array]
  near_one: dict[str, Array]
  dead: dict[str, Array]
  dead_units: dict[str, Array]
  mean: dict[str, Array]
  keep_plus_write: Summary | None
  hidden_norm: Array


def _summary(values: Array, valid: Array) -> Summary:
  """Summary of ``values`` ``(T, *batch, H)`` where ``valid`` ``(T, *batch)``."""
  mask = jnp.broadcast_to(valid[..., None], values.shape)
  count = jnp.sum(mask).astype(values.dtype)
  mean = jnp.sum(jnp.where(mask, values, 0)) / count
  var = jnp.sum(jnp.where(mask, jnp.square(values - mean), 0)) / count
  nothing = jnp.asarray(jnp.nan, values.dtype)
  low = jnp.min(jnp.where(mask, values, jnp.inf), initial=jnp.inf)
  high = jnp.max(jnp.where(mask, values, -jnp.inf), initial=-jnp.inf)
  return Summary(
    mean=mean,
    std=jnp.sqrt(var),
    min=jnp.where(count > 0, low, nothing),
    max=jnp.where(count > 0, high, nothing),
  )


def gate_statistics(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  eps: float = 0.1,
  options: ScanOptions | None = None,
) -> GateStatistics:
  r"""Saturation, dead gates, ``keep + write`` and the hidden-state norm along a sequence.

  The gate activations come from :func:`gatejax.scan_with_gates`, i.e. from the cell's own
  ``recur`` (a cell without one reports no gates: only ``hidden_norm`` is measured);
  ``gate_names`` says which of them are gates, ``keep_write`` which keeps and which
  writes. Steps past a sequence's length are left out of every statistic. The default
  ``eps = 0.1`` calls a gate saturated below 0.1 or above 0.9, as Karpathy, Johnson and
  Fei-Fei (2016, *Visualizing and understanding recurrent networks*) do.

  The additive paths that keep gradients alive are ``z ⊙ h`` (GRU) and ``f ⊙ c`` (LSTM).
  The GRU ties what it keeps to what it writes, ``z + (1 - z) = 1``; the LSTM's ``f`` and
  ``i`` are free, so ``f + i`` may sit anywhere in ``[0, 2]``: ``keep_plus_write`` shows
  where it does.

  Args:
    cell: a :class:`~gatejax.cells.Cell`.
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    eps: saturation margin, in ``(0, 0.5]``.
    options: a :class:`~gatejax.ScanOptions` for the run of the sequence.

  Returns:
    A :class:`GateStatistics`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> xs = jax.random.normal(jax.random.key(1), (20, 4, 3))
    >>> cell = gj.lstm(8, gate_fn=jax.nn.relu)
    >>> stats = gj.analysis.gate_statistics(cell, cell.init(jax.random.key(0), 3), xs)
    >>> sorted(stats.dead)
    ['f', 'i', 'o']
    >>> bool(stats.dead["i"] > 0.2)             # a ReLU gate is exactly 0 about half the time
    True
    >>> cell = gj.gru(8)
    >>> stats = gj.analysis.gate_statistics(cell, cell.init(jax.random.key(0), 3), xs)
    >>> float(stats.keep_plus_write.mean), float(stats.dead["z"])
    (1.0, 0.0)
  """
  if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 0.5:
    raise ValueError(f"eps must be a number in (0, 0.5], got {eps!r}")
  _, ys, gates = scan_with_gates(cell, params, xs, carry=carry, lengths=lengths, options=options)
  acts = protocol.gate_values(cell, gates)
  pair = protocol.keep_write(cell, gates)
  lengths = None if lengths is None else loop.int32(jnp.asarray(lengths))
  return _gate_statistics(ys, acts, pair, lengths, eps)


@bounded_jit(static_argnames=())
def _gate_statistics(
  ys: Array,
  acts: dict[str, Array],
  keep_write: tuple[Array, Array] | None,
  lengths: Array | None,
  eps: float,
) -> GateStatistics:
  T, batch_shape = ys.shape[0], ys.shape[1:-1]
  ones = jnp.ones((T, *batch_shape), bool)
  valid = ones if lengths is None else loop.valid_steps(T, lengths)

  def mask_of(a: Array) -> Array:
    """The valid steps, broadcast over a gate's own shape (a head's gate, a unit's, ...)."""
    return jnp.broadcast_to(valid.reshape(valid.shape + (1,) * (a.ndim - valid.ndim)), a.shape)

  masks = {n: mask_of(a) for n, a in acts.items()}
  counts = {n: jnp.sum(m).astype(ys.dtype) for n, m in masks.items()}
  # A statistic of NaN gates is NaN: a NaN is neither near 0 nor near 1, and counting it as
  # "not saturated" would report a broken run as a healthy one.
  broken = {n: jnp.any(jnp.isnan(a) & masks[n]) for n, a in acts.items()}
  nothing = jnp.asarray(jnp.nan, ys.dtype)

  def fraction(n: str, condition: Array) -> Array:
    share = jnp.sum(condition & masks[n]).astype(ys.dtype) / counts[n]
    return jnp.where(broken[n], nothing, share)

  never_open = {
    n: jnp.all((a == 0) | ~masks[n], axis=tuple(range(valid.ndim))) for n, a in acts.items()
  }
  keep_plus_write = None if keep_write is None else _summary(keep_write[0] + keep_write[1], valid)
  flat = (T, math.prod(batch_shape))  # not (T, -1): T may be 0
  sequences = jnp.sum(valid.reshape(flat), axis=1)
  norms = jnp.where(valid, jnp.linalg.norm(ys, axis=-1), 0).reshape(flat)
  return GateStatistics(
    near_zero={n: fraction(n, a < eps) for n, a in acts.items()},
    near_one={n: fraction(n, a > 1 - eps) for n, a in acts.items()},
    dead={n: fraction(n, a == 0) for n, a in acts.items()},
    dead_units={
      n: jnp.where((counts[n] > 0) & ~broken[n], jnp.mean(u.astype(ys.dtype)), nothing)
      for n, u in never_open.items()
    },
    mean={n: jnp.sum(jnp.where(masks[n], a, 0)) / counts[n] for n, a in acts.items()},
    keep_plus_write=keep_plus_write,
    hidden_norm=jnp.sum(norms, axis=1) / jnp.maximum(sequences, 1).astype(ys.dtype),
  )
