"""Norms that neither overflow nor underflow: every magnitude scaled by an exact power of two.

Private to :mod:`gatejax.analysis`: a product of hundreds of Jacobians leaves the float
range long before its norm does, so the sweeps carry an exponent beside their rows.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array


def exponent(magnitude: Array) -> Array:
  """The binary exponent ``e`` of a magnitude (``m = f·2^e``, ``f`` in ``[0.5, 1)``); 0 for 0,
  infinity and NaN, so that scaling by ``2^-e`` leaves those as they are."""
  usable = (magnitude > 0) & jnp.isfinite(magnitude)
  return jnp.where(usable, jnp.frexp(jnp.where(usable, magnitude, 1))[1], 0)


def scaled_norm(leaves: list[Array], axes: tuple[int, ...] | None = None) -> Array:
  """The L2 norm over ``leaves`` (reduced over ``axes``), immune to under- and overflow.

  Far contributions reach 1e-30 in float32, whose squares would flush to zero, and near
  ones can exceed 1e19, whose squares overflow: the squares are taken after scaling every
  entry by ``2^-e``, ``e`` the binary exponent of the largest magnitude. The scaling is
  ``ldexp``, exact, and never a division: XLA divides by multiplying with the reciprocal,
  and the reciprocal of a number above ``2^126`` flushes to zero in float32.
  """
  scale = magnitude(leaves, axes)
  e = exponent(scale)
  total = sum(jnp.sum(jnp.square(ldexp(leaf, -e, axes)), axis=axes) for leaf in leaves)
  return jnp.where(jnp.isfinite(scale), jnp.ldexp(jnp.sqrt(total), e), scale)


def magnitude(leaves: list[Array], axes: tuple[int, ...] | None) -> Array:
  """The largest ``|entry|`` over ``leaves`` (reduced over ``axes``), NaN where any entry is.

  XLA's CPU max ignores NaN (its fast min/max), so an all-NaN block would read as the
  reduction's start value, ``-inf``: NaN is found separately and kept.
  """
  largest = jnp.stack([jnp.max(jnp.abs(leaf), axis=axes) for leaf in leaves]).max(axis=0)
  nan = jnp.stack([jnp.any(jnp.isnan(leaf), axis=axes) for leaf in leaves]).any(axis=0)
  return jnp.where(nan, jnp.full_like(largest, jnp.nan), largest)


def ldexp(leaf: Array, e: Array, axes: tuple[int, ...] | None) -> Array:
  """``leaf · 2^e`` with ``e`` reduced over ``axes`` of ``leaf`` (broadcast back)."""
  return jnp.ldexp(leaf, expand(e, leaf, axes))


def expand(scale: Array, like: Array, axes: tuple[int, ...] | None) -> Array:
  if axes is None:
    return scale
  return jnp.expand_dims(scale, tuple(a % like.ndim for a in axes))


def global_norm(tree: Any) -> Array:
  leaves = [jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)]
  return scaled_norm(leaves) if leaves else jnp.zeros(())
