"""Measuring the vanishing experiment: contribution norms at initialisation, per configuration."""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

import gatejax as gj
from gatejax import analysis, protocol
from gatejax.experiments import _common

#: Every built-in cell, by the name of its factory (``gatejax vanishing --cells`` takes these).
CELL_KINDS = tuple(_common.CELLS)


class Sizes(NamedTuple):
  """Sizes of the experiment.

  Attributes:
    cells: names among :data:`CELL_KINDS` (a cell with a keep-gate bias runs twice: at its
      default bias and with ``gj.chrono(time)``), or cells (any cell of
      :mod:`gatejax.protocol`, a user's too), run as they are.
    time: sequence length ``T`` (at least 3, for ``gj.chrono(T)``).
    hidden: hidden size.
    batch: sequences in the batch.
    input_size: features per step.
    fraction: the threshold of :func:`~gatejax.analysis.gradient_horizon`.
  """

  cells: tuple[Any, ...] = CELL_KINDS
  time: int = 200
  hidden: int = 32
  batch: int = 16
  input_size: int = 8
  fraction: float = _common.HORIZON_FRACTION


#: The sizes of ``gatejax report``: every built-in cell over 200 steps.
FULL = Sizes()
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = Sizes(cells=("rnn", "lstm", "min_gru"), time=30, hidden=8, batch=4)


class Run(NamedTuple):
  """One configuration's curve and its summaries.

  Attributes:
    label: e.g. ``"lstm, forget_bias=1"``.
    norms: ``(T,)`` NumPy array, ``norms[t] = ‖g_t‖``; ``norms[::-1][d]`` is ``d`` steps back.
    horizon: :func:`~gatejax.analysis.gradient_horizon` at the sizes' ``fraction``.
    far_share: :func:`~gatejax.analysis.far_share` of the far half (``T // 2`` or more back).
    decay_rate: :func:`~gatejax.analysis.decay_rate`, the fitted factor per step back.
    seconds: wall time of the sweep, compilation included.
    linear: whether the cell is linear in its carry (offers ``affine``): its step
      Jacobian is the coefficient ``a_t`` of ``c_t = a_t · c_(t-1) + b_t``, set by the input
      alone.
    kind: the name of the cell's factory (a key of :data:`CELL_KINDS`), ``None`` for a cell
      given as a value.
    form: for a cell linear in its carry, the form of ``a_t``
      (:data:`gatejax.affine.FORMS`): ``"diagonal"`` (``diag(a_t)``: minGRU, RG-LRU, S6,
      LRU, ...) or ``"matrix"`` (DeltaNet's ``I - β_t k_t k_tᵀ``); else ``None``.
    title: how sentences name the cell: the title it brings (``"RG-LRU"``) for a cell
      given by name, else the label.
  """

  label: str
  norms: np.ndarray
  horizon: int
  far_share: float
  decay_rate: float
  seconds: float
  linear: bool = False
  kind: str | None = None
  form: str | None = None
  title: str = ""


class Result(NamedTuple):
  """What :func:`run` measured: the sizes and one :class:`Run` per configuration."""

  sizes: Sizes
  runs: tuple[Run, ...]

  @property
  def curves(self) -> dict[str, np.ndarray]:
    """label -> ``(T,)`` norms, the argument of :func:`gatejax.plots.contribution_curves`."""
    return {run.label: run.norms for run in self.runs}


def _configurations(
  cells: Sequence[Any], time: int, hidden: int
) -> dict[str, tuple[str | None, Any]]:
  """label -> (factory name or ``None``, cell), as :func:`configurations`."""
  out: dict[str, tuple[str | None, Any]] = {}
  for entry in cells:
    if not isinstance(entry, str):
      protocol.require(entry, "cells[...]")
      out[protocol.describe(entry)] = (None, entry)
    elif entry not in _common.CELLS:
      raise ValueError(f"cells must be among {CELL_KINDS} or cells, got {entry!r}")
    elif (bias := _common.keep_bias(entry)) is None:
      out["rnn (tanh)" if entry == "rnn" else entry] = (entry, _common.cell(entry, hidden))
    else:
      default = _common.default_option(entry, bias)
      out[f"{entry}, {bias}={default:g}"] = (entry, _common.cell(entry, hidden))
      chrono = _common.cell(entry, hidden, **{bias: gj.chrono(time)})
      out[f"{entry}, chrono({time})"] = (entry, chrono)
  return out


def configurations(cells: Sequence[Any], time: int, hidden: int) -> dict[str, Any]:
  """label -> cell: each named cell at its default bias (the gated ones with a bias option also
  with ``gj.chrono(time)``); a cell given as a value (any cell, a user's too) as it is.

  Example:
    >>> from gatejax.experiments.vanishing import configurations
    >>> list(configurations(["gru", "min_gru"], 50, 8))
    ['gru, update_bias=0', 'gru, chrono(50)', 'min_gru']
  """
  return {label: cell for label, (_, cell) in _configurations(cells, time, hidden).items()}


def _affine_form(cell: Any, params: Any, xs: jax.Array) -> str | None:
  """The form of a cell's ``affine`` coefficients (traced, never run), ``None`` without one."""
  affine = getattr(cell, "affine", None)
  if affine is None:
    return None
  return jax.eval_shape(affine, params, xs[:1]).form


def _last_step_loss(ys: jax.Array, final_carry: object) -> jax.Array:
  return jnp.sum(ys[-1] ** 2)


def _check(sizes: Any) -> Sizes:
  if not isinstance(sizes, Sizes):
    raise TypeError(f"sizes must be a vanishing.Sizes, got {type(sizes).__name__}")
  for name, low in (("time", 3), ("hidden", 1), ("batch", 1), ("input_size", 1)):
    value = getattr(sizes, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  return sizes


def run(
  sizes: Sizes = FULL, *, key: PRNGKeyArray, progress: Callable[[str], None] | None = None
) -> Result:
  """Contribution norm against distance for each configuration, on the same inputs.

  Every configuration reads the same unit normal inputs (``T × batch × input_size``, the
  first half of ``key``) from its initialisation with the second half of ``key``.

  Args:
    sizes: a :class:`Sizes` (:data:`FULL`, :data:`QUICK`).
    key: the PRNG key of the inputs and of every cell's initialisation.
    progress: called with a one-line message as the experiment starts.

  Returns:
    A :class:`Result`.

  Example:
    >>> import jax
    >>> from gatejax.experiments import vanishing
    >>> sizes = vanishing.Sizes(cells=("rnn",), time=40, hidden=8, batch=2)
    >>> result = vanishing.run(sizes, key=jax.random.key(0))
    >>> [r.label for r in result.runs], result.runs[0].norms.shape
    (['rnn (tanh)'], (40,))
  """
  sizes = _check(sizes)
  configs = _configurations(list(sizes.cells), sizes.time, sizes.hidden)
  if progress is not None:
    names = [c if isinstance(c, str) else protocol.describe(c) for c in sizes.cells]
    progress(f"vanishing: {', '.join(names)} at initialisation, T = {sizes.time}")
  k_x, k_p = jax.random.split(key)
  xs = jax.random.normal(k_x, (sizes.time, sizes.batch, sizes.input_size))
  runs = []
  for label, (kind, cell) in configs.items():
    params = cell.init(k_p, sizes.input_size)
    start = _time.perf_counter()
    norms = analysis.contribution_norms(cell, params, xs, _last_step_loss)
    norms = np.asarray(jax.block_until_ready(norms))
    seconds = _time.perf_counter() - start
    runs.append(
      Run(
        label=label,
        norms=norms,
        horizon=int(analysis.gradient_horizon(norms, fraction=sizes.fraction)),
        far_share=float(analysis.far_share(norms, sizes.time // 2)),
        decay_rate=float(analysis.decay_rate(norms)),
        seconds=seconds,
        linear=getattr(cell, "affine", None) is not None,
        kind=kind,
        form=_affine_form(cell, params, xs),
        title=label if kind is None else _common.title(cell),
      )
    )
  return Result(sizes, tuple(runs))


def estimated_bytes(sizes: Sizes) -> float:
  """Peak memory of :func:`run` (its largest configuration), in bytes.

  Derived from each cell (traced, never run): per step the sweep keeps the projected input,
  the carry it read, the output and its cotangent; 1.5 times that covers XLA's temporaries
  (checked against XLA's own memory analysis in the tests). Plus the parameters, twice.
  """
  batch, inputs = sizes.batch, sizes.input_size
  largest = 0.0
  for cell in configurations(sizes.cells, max(sizes.time, 3), sizes.hidden).values():
    params = protocol.expected_params(cell, inputs)
    x = jax.ShapeDtypeStruct((batch, inputs), jnp.float32)
    px = jax.eval_shape(protocol.recurrence(cell).project, params, x)
    carry = jax.eval_shape(lambda cell=cell: cell.initial_carry((batch,)))
    step = sum(a.size for a in jax.tree.leaves((px, carry))) + 2 * batch * cell.hidden_size
    weights = sum(a.size for a in jax.tree.leaves(params))
    largest = max(largest, 4 * (1.5 * sizes.time * (step + batch * inputs) + 2 * weights))
  return largest
