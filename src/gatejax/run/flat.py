"""A carry as real numbers: complex leaves as their real and imaginary parts (SPEC §3c).

Newton's method (:func:`gatejax.parallel_scan`), Lyapunov exponents (:mod:`gatejax.dynamics`)
and the analysis' Jacobian sweep work with the step's real Jacobian. A cell whose carry is
complex (:func:`gatejax.lru`) is a map of ``R^{2N}``, not a holomorphic map of ``C^N`` to them,
so each complex leaf ``z`` enters as the pair ``(Re z, Im z)``: a state ``λ z`` is then a
scaled rotation, whose two Lyapunov exponents are both ``log |λ|``.

:func:`to_real` and :func:`from_real` turn a carry pytree into a real one and back;
:func:`flatten` and :func:`unflattener` make one real vector of it per sequence.

Example:
  >>> import jax.numpy as jnp
  >>> from gatejax.run import flat
  >>> carry = (jnp.array([1.0, 2.0]), jnp.array([3 + 4j]))
  >>> flat.flatten(carry, 0)
  Array([1., 2., 3., 4.], dtype=float32)
  >>> flat.unflattener(carry)(jnp.array([1.0, 2.0, 3.0, 4.0]))[1]
  Array([3.+4.j], dtype=complex64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = [
  "flat_step",
  "flatten",
  "from_real",
  "per_sequence",
  "size",
  "to_real",
  "unflattener",
  "work_dtype",
]

Carry = Any
Params = Any


def _is_complex(leaf: Any) -> bool:
  return jnp.issubdtype(leaf.dtype, jnp.complexfloating)


def to_real(tree: Carry) -> Carry:
  """Each complex leaf ``z`` becomes the pair ``(Re z, Im z)``; real leaves stay."""
  return jax.tree.map(lambda a: (jnp.real(a), jnp.imag(a)) if _is_complex(a) else a, tree)


def from_real(tree: Carry, template: Carry) -> Carry:
  """The inverse of :func:`to_real`: ``template`` (arrays or shape-dtype structs) says which
  leaves were complex and their dtypes."""
  leaves, treedef = jax.tree.flatten(template)
  parts = treedef.flatten_up_to(tree)
  out = [
    jax.lax.complex(*part).astype(leaf.dtype) if _is_complex(leaf) else part
    for leaf, part in zip(leaves, parts, strict=True)
  ]
  return jax.tree.unflatten(treedef, out)


def size(template: Carry) -> int:
  """The length of the real vector of one carry (a complex entry counts twice)."""
  return sum(math.prod(a.shape) * (2 if _is_complex(a) else 1) for a in jax.tree.leaves(template))


def flatten(tree: Carry, lead: int) -> Array:
  """Leaves ``(*lead_axes, ...)`` -> one real array ``(*lead_axes, n)``: the leaves in pytree
  order, each complex one as its real part, then its imaginary part."""
  leaves = jax.tree.leaves(to_real(tree))
  dtype = jnp.result_type(*leaves)
  return jnp.concatenate(
    [leaf.reshape((*leaf.shape[:lead], -1)).astype(dtype) for leaf in leaves], axis=-1
  )


def unflattener(template: Carry) -> Callable[[Array], Carry]:
  """``vector (n,) -> carry``: the inverse of :func:`flatten` for one sequence's carry."""
  structs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), template)
  leaves, treedef = jax.tree.flatten(structs)

  def unravel(vector: Array) -> Carry:
    out, start = [], 0
    for leaf in leaves:
      n = math.prod(leaf.shape)
      if _is_complex(leaf):
        re = vector[start : start + n].reshape(leaf.shape)
        im = vector[start + n : start + 2 * n].reshape(leaf.shape)
        out.append(jax.lax.complex(re, im).astype(leaf.dtype))
        start += 2 * n
      else:
        out.append(vector[start : start + n].reshape(leaf.shape).astype(leaf.dtype))
        start += n
    return jax.tree.unflatten(treedef, out)

  return unravel


def per_sequence(carry: Carry, batch_ndim: int) -> tuple[Any, int]:
  """The carry of one sequence (an abstract template) and its real vector's size ``n``."""
  template = jax.tree.map(
    lambda leaf: jax.ShapeDtypeStruct(leaf.shape[batch_ndim:], leaf.dtype), carry
  )
  return template, size(template)


def flat_step(cell: Any, unravel: Callable[[Array], Carry]) -> Callable[..., Array]:
  """``(params, c, x, valid) -> c'`` on flat carries of one sequence; holds ``c`` if not ``valid``."""

  def f(params: Params, c: Array, x: Array, valid: Array) -> Array:
    new, _ = cell.step(params, unravel(c), x)
    new = flatten(new, 0).astype(c.dtype)
    return jnp.where(valid, new, c)

  return f


def work_dtype(dtype: Any) -> Any:
  """Linear algebra on flat carries (solves, QR) runs in at least float32: LAPACK has no
  half-precision kernels."""
  return jnp.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else jnp.dtype(dtype)
