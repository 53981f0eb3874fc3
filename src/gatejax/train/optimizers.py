r"""The optimizer of a run: optax, with the gradient clipped by its global norm first.

Clipping is the remedy for exploding gradients of Pascanu, Mikolov & Bengio (2013): it
rescales the whole gradient :math:`g` to :math:`g \cdot \min(1, c / \lVert g \rVert_2)`,
so one exploding step cannot throw the parameters away while its direction is kept.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, cast

import optax

import gatejax.train._checks as _checks

__all__ = ["make_optimizer", "resolve_optimizer"]

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
  "adam": optax.adam,
  "adamw": optax.adamw,
  "rmsprop": optax.rmsprop,
  "sgd": optax.sgd,
}

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_CLIP_NORM = 1.0


def make_optimizer(
  *,
  learning_rate: float | optax.Schedule = DEFAULT_LEARNING_RATE,
  clip_norm: float | None = DEFAULT_CLIP_NORM,
  optimizer: str = "adam",
) -> optax.GradientTransformation:
  r"""``optax.chain(optax.clip_by_global_norm(clip_norm), optax.<optimizer>(learning_rate))``.

  Clipping rescales the whole gradient :math:`g` to :math:`g \cdot \min(1, c / \lVert g
  \rVert_2)`, so a single exploding step cannot throw the parameters away while its
  direction is kept (Pascanu et al. 2013). ``clip_norm=None`` disables it.

  Equal arguments return the same object (the factory is cached), so a jitted step
  that takes the optimizer as a static argument is not recompiled.

  Args:
    learning_rate: a finite float > 0, or an optax schedule.
    clip_norm: the largest global gradient norm (finite, > 0), or ``None`` for no clipping.
    optimizer: ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"sgd"``.

  Example:
    >>> import jax.numpy as jnp
    >>> from gatejax import train
    >>> opt = train.make_optimizer(learning_rate=1.0, clip_norm=1.0, optimizer="sgd")
    >>> grads = {"w": jnp.array([3.0, 4.0])}                   # norm 5
    >>> updates, _ = opt.update(grads, opt.init(grads))
    >>> updates["w"].tolist()                                  # -g / 5, norm 1
    [-0.6000000238418579, -0.800000011920929]
  """
  if optimizer not in _OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}")
  learning_rate = _learning_rate(learning_rate)
  clip_norm = _checks.positive_float("clip_norm", clip_norm, "or None for no clipping")
  return _make_optimizer(learning_rate, clip_norm, optimizer)


def _learning_rate(value: Any) -> float | optax.Schedule:
  if callable(value):
    return cast(optax.Schedule, value)
  if not isinstance(value, numbers.Real) or isinstance(value, bool):
    raise TypeError(f"learning_rate must be a float or an optax schedule, got {value!r:.80}")
  number = float(value)
  if not (math.isfinite(number) and number > 0):
    # A negative rate would run gradient ascent, zero would train nothing.
    raise ValueError(
      f"learning_rate must be a finite number > 0 or an optax schedule, got {value!r}"
    )
  return number


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _make_optimizer(
  learning_rate: float | optax.Schedule, clip_norm: float | None, optimizer: str
) -> optax.GradientTransformation:
  base = _OPTIMIZERS[optimizer](learning_rate)
  if clip_norm is None:
    return base
  return optax.chain(optax.clip_by_global_norm(clip_norm), base)


def resolve_optimizer(
  optimizer: str | optax.GradientTransformation | None = None,
  *,
  learning_rate: float | optax.Schedule = DEFAULT_LEARNING_RATE,
  clip_norm: float | None = DEFAULT_CLIP_NORM,
) -> optax.GradientTransformation:
  """The optax transformation a run uses: the one place where an optimizer is chosen.

  ``optimizer`` is an ``optax.GradientTransformation``, used as it is, or a name (``None``
  is ``"adam"``) that :func:`make_optimizer` builds with ``learning_rate`` and
  ``clip_norm``. A transformation carries its own learning rate and clipping, so passing
  either beside one is an error rather than a value silently ignored.

  Raises:
    TypeError: ``optimizer`` is neither a name, a transformation nor ``None``.
    ValueError: an unknown name, a bad ``learning_rate`` or ``clip_norm``, or either of
      them set to a non-default value beside a transformation.

  Example:
    >>> import optax
    >>> from gatejax import train
    >>> train.resolve_optimizer("sgd", learning_rate=0.1) is train.make_optimizer(
    ...     learning_rate=0.1, optimizer="sgd")
    True
    >>> train.resolve_optimizer(optax.adam(1e-2), learning_rate=0.1)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate=0.1 is given beside an optax transformation, which has its own; ...
  """
  # Checked even beside a transformation: a bad value is a mistake either way.
  learning_rate = _learning_rate(learning_rate)
  clip_norm = _checks.positive_float("clip_norm", clip_norm, "or None for no clipping")
  if optimizer is None or isinstance(optimizer, str):
    return make_optimizer(
      learning_rate=learning_rate, clip_norm=clip_norm, optimizer=optimizer or "adam"
    )
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(
      f"optimizer must be a name, an optax.GradientTransformation or None, got {optimizer!r:.80}"
    )
  for name, value, default in (
    ("learning_rate", learning_rate, DEFAULT_LEARNING_RATE),
    ("clip_norm", clip_norm, DEFAULT_CLIP_NORM),
  ):
    if value != default:
      raise ValueError(
        f"{name}={value!r} is given beside an optax transformation, which has its own; "
        "build the transformation with it (e.g. optax.chain(optax.clip_by_global_norm(c), "
        "optax.adam(lr))) or pass the optimizer's name instead"
      )
  return optimizer
