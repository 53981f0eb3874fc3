"""The demonstration: run the classic cells over one random sequence and show where the gradient
comes from.

For each cell the loss is the squared output of the last step, and the gradient with
respect to the input at each time step says how much that step still matters at the
end: the far steps fade in a tanh RNN and survive in gated cells whose gates keep
(``gj.chrono(T)`` biases). ``gatejax demo`` prints :func:`format_table`.

The experiment's four doors: :class:`Sizes` (:data:`FULL`, :data:`QUICK`), :func:`run`
(numbers only), :func:`to_markdown` and :func:`to_json`.

Example:
  >>> from gatejax.experiments import demo
  >>> demo.QUICK
  Sizes(time=30, hidden=8, batch=4, input_size=8)

  The whole demonstration: ``result = demo.run(demo.QUICK, key=jax.random.key(0))``, then
  ``print(demo.format_table(result))``.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

import gatejax as gj
from gatejax import _format
from gatejax.experiments import _common

__all__ = [
  "DISTANCES",
  "FULL",
  "QUICK",
  "Result",
  "Sizes",
  "estimated_bytes",
  "format_table",
  "input_gradient_profile",
  "run",
  "to_json",
  "to_markdown",
]

#: The distances ``d`` (steps back) shown, those up to ``T``.
DISTANCES = (1, 10, 30, 100, 300, 1000)


class Sizes(NamedTuple):
  """Sizes of the demonstration.

  Attributes:
    time: sequence length ``T`` (at least 3, for ``gj.chrono(T)``).
    hidden: hidden size.
    batch: sequences in the batch.
    input_size: features per step.
  """

  time: int = 200
  hidden: int = 32
  batch: int = 16
  input_size: int = 8


#: The sizes of ``gatejax demo`` without options.
FULL = Sizes()
#: Tiny sizes for the tests.
QUICK = Sizes(time=30, hidden=8, batch=4)


class Result(NamedTuple):
  """What :func:`run` measured.

  Attributes:
    sizes: the :class:`Sizes` used.
    profiles: label -> ``(T,)`` ``‖∂L/∂x_t‖`` averaged over the batch, step ``t`` first.
    seconds: label -> wall time of the profile, compilation included.
  """

  sizes: Sizes
  profiles: dict[str, np.ndarray]
  seconds: dict[str, float]


def input_gradient_profile(cell: Any, params: Any, xs: Array) -> Array:
  """``‖∂L/∂x_t‖`` per step ``t`` for ``L = ‖y_T‖²``, averaged over the batch."""

  def loss(xs: Array) -> Array:
    _, ys = gj.scan(cell, params, xs)
    return jnp.sum(ys[-1] ** 2)

  grads = jax.grad(loss)(xs)
  return jnp.sqrt(jnp.sum(grads**2, axis=-1)).mean(axis=-1)


def estimated_bytes(sizes: Sizes) -> float:
  """Peak memory of the largest cell's gradient profile (the LSTM's), in bytes.

  Fitted to XLA's own ``memory_analysis()`` of :func:`input_gradient_profile` on CPU
  (jax 0.10): the stored residuals, ``31 × T × batch × hidden`` bytes, and the parameters
  with their gradients, ``21 × hidden × (hidden + input)``.
  """
  T, H, inputs = sizes.time, sizes.hidden, sizes.input_size
  return T * sizes.batch * (31 * H + 4 * inputs) + 21 * H * (H + inputs)


def _cells(sizes: Sizes) -> dict[str, Any]:
  T, H = sizes.time, sizes.hidden
  return {
    "rnn (tanh)": _common.cell("rnn", H),
    "gru": _common.cell("gru", H),
    f"gru, chrono({T})": _common.cell("gru", H, update_bias=gj.chrono(T)),
    "lstm": _common.cell("lstm", H),
    f"lstm, chrono({T})": _common.cell("lstm", H, forget_bias=gj.chrono(T)),
  }


def run(
  sizes: Sizes = FULL, *, key: PRNGKeyArray, progress: Callable[[str], None] | None = None
) -> Result:
  """Each cell's input-gradient profile on one batch of unit normal inputs.

  Args:
    sizes: a :class:`Sizes`.
    key: its first half draws the inputs, its second every cell's parameters.
    progress: called with a one-line message as each cell starts.

  Returns:
    A :class:`Result`.
  """
  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a demo.Sizes, got {type(sizes).__name__}")
  if sizes.time < 3:
    raise ValueError(f"time must be an int >= 3 (for chrono(T)), got {sizes.time}")
  k_x, k_p = jax.random.split(key)
  xs = jax.random.normal(k_x, (sizes.time, sizes.batch, sizes.input_size))
  profiles, seconds = {}, {}
  for label, cell in _cells(sizes).items():
    if progress is not None:
      progress(f"demo: {label}")
    params = cell.init(k_p, sizes.input_size)
    start = _time.perf_counter()
    profile = jax.block_until_ready(input_gradient_profile(cell, params, xs))
    seconds[label] = _time.perf_counter() - start
    profiles[label] = np.asarray(profile, np.float64)
  return Result(sizes, profiles, seconds)


def _distances(result: Result) -> list[int]:
  return [d for d in DISTANCES if d <= result.sizes.time]


def to_markdown(result: Result) -> str:
  """A markdown table: ``‖∂L/∂x_(T-d)‖`` at a few distances ``d``, per cell."""
  distances = _distances(result)
  T = result.sizes.time
  rows = [
    "| cell | " + " | ".join(f"d = {d}" for d in distances) + " |",
    "|---|" + "---|" * len(distances),
  ]
  for label, profile in result.profiles.items():
    row = " | ".join(_format.number(float(profile[T - d])) for d in distances)
    rows.append(f"| {label} | {row} |")
  return "\n".join(rows)


def to_json(result: Result) -> dict[str, Any]:
  """The numbers as plain JSON types (non-finite values as ``"nan"``, ``"inf"``)."""
  return _format.jsonable(
    {
      "sizes": result.sizes._asdict(),
      "loss": "||y_T||^2, summed over the batch",
      "profiles": result.profiles,
      "seconds": result.seconds,
    }
  )


def format_table(result: Result) -> str:
  """The table ``gatejax demo`` prints: the profile at a few distances, and each cell's time."""
  s, distances = result.sizes, _distances(result)
  lines = [
    f"‖∂L/∂x_(T-d)‖ for L = ‖y_T‖², T = {s.time}, hidden {s.hidden}, batch {s.batch}",
    f"{'cell':<22}" + "".join(f"{'d=' + str(d):>11}" for d in distances) + f"{'time':>9}",
  ]
  for label, profile in result.profiles.items():
    row = "".join(f"{float(profile[s.time - d]):>11.2e}" for d in distances)
    lines.append(f"{label:<22}{row}{result.seconds[label]:>8.2f}s")
  return "\n".join(lines)
