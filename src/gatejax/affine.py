r"""Affine recurrences :math:`c \mapsto a \cdot c + b` as a semigroup: the one kernel.

A step that is affine in its carry, :math:`c_t = a_t \cdot c_{t-1} + b_t`, composes with
the next into another affine map,

.. math:: (a_2, b_2) \circ (a_1, b_1) = (a_2 a_1,\; a_2 b_1 + b_2),

an associative operation with the identity :math:`(1, 0)`, so ``jax.lax.associative_scan``
evaluates every carry of a sequence in :math:`O(\log T)` depth. This module is that
operation and nothing else; the associative runner (``impl="associative"``), Newton's
linear solves (:func:`gatejax.parallel_scan`) and the analysis' exact step Jacobians all
use it.

An :class:`Affine` holds the coefficients of a whole sequence, time first, in one of two
forms:

* ``"diagonal"``: :math:`c_t = a_t \odot c_{t-1} + b_t` leaf by leaf, for any pytree carry,
  real or complex; ``a`` and ``b`` have the carry's structure, every leaf of shape
  ``(time, *carry_leaf.shape)``.
* ``"matrix"``: :math:`c_t = a_t\, c_{t-1} + b_t`, where ``a_t`` is a square matrix acting on
  one axis of the carry, its *key* axis (DeltaNet's state is ``(K, V)`` per head; ``a_t``
  is ``(K, K)``). A leaf of ``a`` is ``(time, *lead, K, K)`` for a carry leaf
  ``(*lead, K, *rest)``: the key axis is the one after the leading axes ``a`` shares with
  the carry. ``b`` has the carry's shape with a time axis.

Padding is the identity element: :func:`mask` replaces the coefficients of every step
past a sequence's length by :math:`(1, 0)` (the identity matrix for ``"matrix"``), so a
padded step leaves every part of the carry unchanged, decay included, in one place and
for every cell.

Example:
  >>> import jax.numpy as jnp
  >>> from gatejax import affine
  >>> aff = affine.Affine(a=jnp.full((4, 1), 0.5), b=jnp.ones((4, 1)))
  >>> affine.solve(aff, jnp.zeros(1))[:, 0].tolist()
  [1.0, 1.5, 1.75, 1.875]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["FORMS", "Affine", "apply", "check", "compose", "mask", "solve", "suffix_products"]

#: The forms an :class:`Affine` can take.
FORMS = ("diagonal", "matrix")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Affine:
  r"""The coefficients of :math:`c_t = a_t \cdot c_{t-1} + b_t` for every step, time first.

  A pytree (``a`` and ``b`` are its children, ``form`` is static), so it passes through
  ``jax.jit`` and ``jax.vmap``.

  Attributes:
    a: the multipliers: a pytree with the carry's structure, each leaf
      ``(time, *leaf.shape)`` (``"diagonal"``) or ``(time, *lead, K, K)`` (``"matrix"``).
    b: the offsets: the carry's structure, each leaf ``(time, *leaf.shape)``.
    form: ``"diagonal"`` or ``"matrix"``.
  """

  a: Any
  b: Any
  form: str = dataclasses.field(default="diagonal", metadata={"static": True})

  def __post_init__(self) -> None:
    if self.form not in FORMS:
      raise ValueError(f"Affine form must be one of {FORMS}, got {self.form!r}")


# ---------------------------------------------------------------------------
# One leaf
# ---------------------------------------------------------------------------


def _matmul(a: Array, c: Array) -> Array:
  """``a @ c`` on the key axis of ``c``: ``a`` is ``(*lead, K, K)``, ``c`` is ``(*lead, K, *rest)``."""
  lead = a.ndim - 2
  rest = c.shape[lead + 1 :]
  flat = c.reshape((*c.shape[: lead + 1], math.prod(rest)))
  return jnp.matmul(a, flat).reshape(c.shape)


def _times(form: str, a: Array, c: Array) -> Array:
  return a * c if form == "diagonal" else _matmul(a, c)


def _identity(form: str, a: Array) -> Array:
  if form == "diagonal":
    return jnp.ones_like(a)
  return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


def _expand(valid: Array, leaf: Array) -> Array:
  """``valid`` (``(time, *batch)``) reshaped to broadcast against ``leaf`` (``(time, *batch, ...)``)."""
  return jnp.reshape(valid, valid.shape + (1,) * (leaf.ndim - valid.ndim))


# ---------------------------------------------------------------------------
# The semigroup
# ---------------------------------------------------------------------------


def compose(earlier: Affine, later: Affine) -> Affine:
  """The map ``later ∘ earlier``: ``earlier`` applied first (elementwise over any leading axes)."""
  form = later.form

  def a(e: Array, lt: Array) -> Array:
    return e * lt if form == "diagonal" else jnp.matmul(lt, e)

  def b(a_l: Array, b_e: Array, b_l: Array) -> Array:
    return _times(form, a_l, b_e) + b_l

  return Affine(
    a=jax.tree.map(a, earlier.a, later.a), b=jax.tree.map(b, later.a, earlier.b, later.b), form=form
  )


def apply(aff: Affine, carry: Any) -> Any:
  """``a · carry + b`` for coefficients without a time axis (one step)."""
  return jax.tree.map(lambda a, b, c: _times(aff.form, a, c) + b, aff.a, aff.b, carry)


def mask(aff: Affine, valid: Array | None) -> Affine:
  """``aff`` with the identity ``(1, 0)`` at every step where ``valid`` (``(time, *batch)``) is False.

  The one place where padding enters an affine recurrence: a padded step holds the whole
  carry, decay included.
  """
  if valid is None:
    return aff
  form = aff.form
  a = jax.tree.map(lambda a: jnp.where(_expand(valid, a), a, _identity(form, a)), aff.a)
  b = jax.tree.map(lambda b: jnp.where(_expand(valid, b), b, jnp.zeros_like(b)), aff.b)
  return Affine(a=a, b=b, form=form)


def solve(aff: Affine, carry: Any, *, reverse: bool = False) -> Any:
  r"""Every carry of the recurrence from the initial ``carry``: leaves ``(time, *leaf.shape)``.

  .. math:: c_t = a_t \cdot c_{t-1} + b_t, \quad c_0 = \text{carry}

  With ``reverse`` the recurrence runs from the last step back, :math:`c_t = a_t \cdot
  c_{t+1} + b_t`, and entry ``t`` is still step ``t``'s carry. One
  ``jax.lax.associative_scan`` of :func:`compose`, then the composed maps applied to
  ``carry``; JAX differentiates it as it is.
  """
  if not jax.tree.leaves(aff.b) or jax.tree.leaves(aff.b)[0].shape[0] == 0:
    return aff.b

  def combine(earlier: Affine, later: Affine) -> Affine:
    # With reverse=True JAX passes the higher positions first: they are applied earlier.
    return compose(earlier, later)

  prefix = jax.lax.associative_scan(combine, aff, reverse=reverse)
  return jax.tree.map(
    lambda a, b, c: _times(aff.form, a, jnp.broadcast_to(c, b.shape)) + b,
    prefix.a,
    prefix.b,
    carry,
  )


def suffix_products(aff: Affine) -> Any:
  r"""The Jacobians :math:`\partial c_T / \partial c_k = a_T \cdots a_{k+1}` for ``k = 0 .. T-1``.

  Leaves shaped as ``aff.a``'s: entry ``k`` is the product of the multipliers of steps
  ``k+1 … T`` (a reverse cumulative product; matrices multiplied latest on the left).
  """
  form = aff.form

  def later_times_earlier(later: Array, earlier: Array) -> Array:
    # reverse=True: the first argument holds the higher (later) steps.
    return later * earlier if form == "diagonal" else jnp.matmul(later, earlier)

  return jax.tree.map(
    lambda a: jax.lax.associative_scan(later_times_earlier, a, reverse=True), aff.a
  )


def check(aff: Any, carry: Any, steps: int, who: str) -> Affine:
  """``aff`` is an :class:`Affine` whose leaves fit ``carry`` (no time axis) over ``steps`` steps.

  Raises:
    TypeError: ``aff`` is not an :class:`Affine`, or its structure or dtypes differ from the
      carry's.
    ValueError: a leaf has the wrong shape; the message names ``who`` and the leaf.
  """
  if not isinstance(aff, Affine):
    raise TypeError(f"{who} must return a gj.Affine(a, b, form), got {type(aff).__name__}")
  want = jax.tree.structure(carry)
  for name, tree in (("a", aff.a), ("b", aff.b)):
    if jax.tree.structure(tree) != want:
      raise TypeError(
        f"{who}.{name} must have the carry's structure {want}, got {jax.tree.structure(tree)}"
      )
  for k, (a, b, c) in enumerate(
    zip(jax.tree.leaves(aff.a), jax.tree.leaves(aff.b), jax.tree.leaves(carry), strict=True)
  ):
    c_shape = tuple(jnp.shape(c))
    if tuple(b.shape) != (steps, *c_shape):
      raise ValueError(
        f"{who}.b leaf {k} must have shape (time, *carry leaf) = {(steps, *c_shape)}, "
        f"got {tuple(b.shape)}"
      )
    if aff.form == "diagonal":
      want_a = (steps, *c_shape)
    else:
      lead = a.ndim - 3
      ok = a.ndim >= 3 and lead < len(c_shape) and a.shape[-1] == a.shape[-2]
      want_a = (steps, *c_shape[:lead], c_shape[lead], c_shape[lead]) if ok else None
    if tuple(a.shape) != want_a:
      expected = "(time, *carry leaf)" if aff.form == "diagonal" else "(time, *lead, K, K)"
      raise ValueError(
        f"{who}.a leaf {k} must have shape {expected} for a carry leaf {c_shape}, "
        f"got {tuple(a.shape)}"
      )
    for name, x in (("a", a), ("b", b)):
      if jnp.result_type(x) != jnp.result_type(c):
        raise TypeError(
          f"{who}.{name} leaf {k} must have the carry's dtype {jnp.result_type(c)}, "
          f"got {jnp.result_type(x)}"
        )
  return aff
