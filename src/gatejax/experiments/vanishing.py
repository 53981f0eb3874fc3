r"""``gatejax vanishing``: how much each earlier step still contributes to the gradient.

Every configuration reads the same random inputs (unit normal, ``batch × T × 8``) from
its default initialisation, and the loss reads the last step only,
:math:`L = \sum_b \lVert y_{T-1, b} \rVert^2`, so a step's contribution
:math:`\lVert g_t \rVert` (:func:`gatejax.analysis.contribution_norms`) can only reach the
loss through the ``T - 1 - t`` step Jacobians after it. The configurations:

* ``rnn``: tanh RNN (orthogonal ``W_h``);
* ``gru``: the default ``update_bias=0`` (the *neutral* bias: ``z = σ(0) = 0.5`` keeps half
  the carry per step at zero input), and ``gj.chrono(T)``;
* ``lstm``: the default ``forget_bias=1`` (Jozefowicz et al. 2015, ``f ≈ σ(1) = 0.73``),
  and ``gj.chrono(T)``;
* ``mgu`` (``forget_bias=1``, as Flax) and ``minimal_rnn`` (``update_bias=0``), each also
  with ``gj.chrono(T)``;
* ``min_gru`` and ``min_lstm``, whose gates read only the input: their Jacobian is
  ``diag(a_t)`` with ``a_t`` set by ``x_t`` alone (``1 − z_t ≈ 0.5`` at initialisation);
* any cell given as a value, a user's included.

The library function :func:`run_vanishing` computes; :func:`format_table` and :func:`main`
print; :func:`gatejax.plots.contribution_curves` draws.
"""

from __future__ import annotations

import argparse
import time as _time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gatejax as gj
from gatejax import analysis, cli, protocol

__all__ = [
  "CELL_KINDS",
  "DEFAULT_CELLS",
  "VanishingResult",
  "VanishingRun",
  "add_arguments",
  "configurations",
  "format_table",
  "main",
  "run_vanishing",
]

#: Every built-in cell, by the name of its factory (``--cells`` takes these).
CELL_KINDS = ("rnn", "gru", "lstm", "mgu", "minimal_rnn", "min_gru", "min_lstm")
#: What ``gatejax vanishing`` runs unless told: the classic argument (``--cells`` adds the others).
DEFAULT_CELLS = ("rnn", "gru", "lstm")
# name -> (factory, the bias option that chrono initialisation sets, if any)
_NAMED: dict[str, tuple[Callable[..., Any], str | None]] = {
  "rnn": (gj.rnn, None),
  "gru": (gj.gru, "update_bias"),
  "lstm": (gj.lstm, "forget_bias"),
  "mgu": (gj.mgu, "forget_bias"),
  "minimal_rnn": (gj.minimal_rnn, "update_bias"),
  "min_gru": (gj.min_gru, None),
  "min_lstm": (gj.min_lstm, None),
}
DISTANCES = (0, 1, 10, 30, 100, 300, 1000, 3000, 10_000)


class VanishingRun(NamedTuple):
  """One configuration's curve and its summaries.

  Attributes:
    label: e.g. ``"lstm, forget_bias=1"``.
    norms: ``(T,)`` NumPy array, ``norms[t] = ‖g_t‖``; ``norms[::-1][d]`` is ``d`` steps back.
    horizon: :func:`~gatejax.analysis.gradient_horizon` at the result's ``fraction``.
    far_share: :func:`~gatejax.analysis.far_share` of the far half (``T // 2`` or more back).
    decay_rate: :func:`~gatejax.analysis.decay_rate`, the fitted factor per step back.
    seconds: wall time of the sweep, compilation included.
    linear: whether the cell is linear in its carry (offers ``affine``): its
      step Jacobian is ``diag(a_t)`` with ``a_t`` set by the input alone.
  """

  label: str
  norms: np.ndarray
  horizon: int
  far_share: float
  decay_rate: float
  seconds: float
  linear: bool = False


class VanishingResult(NamedTuple):
  """The experiment's settings and one :class:`VanishingRun` per configuration."""

  time: int
  hidden: int
  batch: int
  input_size: int
  seed: int
  fraction: float
  runs: tuple[VanishingRun, ...]

  @property
  def curves(self) -> dict[str, np.ndarray]:
    """label -> ``(T,)`` norms, the argument of :func:`gatejax.plots.contribution_curves`."""
    return {run.label: run.norms for run in self.runs}


def configurations(cells: Sequence[Any], time: int, hidden: int) -> dict[str, Any]:
  """label -> cell: each named cell at its default bias (the gated ones with a bias option also
  with ``gj.chrono(time)``); a cell given as a value (any cell, a user's too) as it is.

  Example:
    >>> from gatejax.experiments.vanishing import configurations
    >>> list(configurations(["gru", "min_gru"], 50, 8))
    ['gru, update_bias=0', 'gru, chrono(50)', 'min_gru']
  """
  out: dict[str, Any] = {}
  for entry in cells:
    if not isinstance(entry, str):
      protocol.require(entry, "cells[...]")
      out[protocol.describe(entry)] = entry
    elif entry not in _NAMED:
      raise ValueError(f"cells must be among {CELL_KINDS} or cells, got {entry!r}")
    else:
      factory, bias = _NAMED[entry]
      if bias is None:
        out["rnn (tanh)" if entry == "rnn" else entry] = factory(hidden)
        continue
      default = {"forget_bias": 1, "update_bias": 0}[bias]
      out[f"{entry}, {bias}={default}"] = factory(hidden)
      out[f"{entry}, chrono({time})"] = factory(hidden, **{bias: gj.chrono(time)})
  return out


def _last_step_loss(ys: jax.Array, final_carry: object) -> jax.Array:
  return jnp.sum(ys[-1] ** 2)


def run_vanishing(
  *,
  cells: Sequence[Any] = DEFAULT_CELLS,
  time: int = 1000,
  hidden: int = 32,
  batch: int = 16,
  input_size: int = 8,
  seed: int = 0,
  fraction: float = 0.01,
) -> VanishingResult:
  """Contribution norm against distance for each configuration, on the same inputs.

  Args:
    cells: names among :data:`CELL_KINDS` (a cell with a keep-gate bias runs twice: default
      bias and ``gj.chrono(time)``), or cells (any cell of :mod:`gatejax.protocol`);
      default :data:`DEFAULT_CELLS`.
    time: sequence length ``T`` (at least 3, for ``gj.chrono(T)``).
    hidden: hidden size.
    batch: sequences in the batch.
    input_size: features per step.
    seed: PRNG seed of the inputs and of every cell's initialisation.
    fraction: the threshold of :func:`~gatejax.analysis.gradient_horizon`.

  Returns:
    A :class:`VanishingResult`.

  Example:
    >>> from gatejax.experiments.vanishing import run_vanishing
    >>> result = run_vanishing(cells=["lstm"], time=40, hidden=8, batch=2)
    >>> [run.label for run in result.runs]
    ['lstm, forget_bias=1', 'lstm, chrono(40)']
    >>> result.runs[0].norms.shape
    (40,)
  """
  for name, value, low in (("time", time, 3), ("hidden", hidden, 1), ("batch", batch, 1)):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  configs = configurations(list(cells), time, hidden)
  k_x, k_p = jax.random.split(jax.random.key(seed))
  xs = jax.random.normal(k_x, (time, batch, input_size))
  runs = []
  for label, cell in configs.items():
    params = cell.init(k_p, input_size)
    start = _time.perf_counter()
    norms = analysis.contribution_norms(cell, params, xs, _last_step_loss)
    norms = np.asarray(jax.block_until_ready(norms))
    seconds = _time.perf_counter() - start
    runs.append(
      VanishingRun(
        label=label,
        norms=norms,
        horizon=int(analysis.gradient_horizon(norms, fraction=fraction)),
        far_share=float(analysis.far_share(norms, time // 2)),
        decay_rate=float(analysis.decay_rate(norms)),
        seconds=seconds,
        linear=getattr(cell, "affine", None) is not None,
      )
    )
  return VanishingResult(time, hidden, batch, input_size, seed, fraction, tuple(runs))


def format_table(result: VanishingResult) -> str:
  """The table :func:`main` prints: relative contribution ``d`` steps back, and the summaries."""
  T = result.time
  distances = [d for d in DISTANCES if d < T]
  width = max(len(run.label) for run in result.runs) + 2
  lines = [
    f"Contribution of the step d steps back, ‖g_(T-1-d)‖ / max_t ‖g_t‖, for L = Σ ‖y_(T-1)‖²"
    f" (T = {T}, hidden {result.hidden}, batch {result.batch}, seed {result.seed})",
    "",
    f"{'cell':<{width}}"
    + "".join(f"{'d=' + str(d):>10}" for d in distances)
    + f"{'horizon':>9}{'far half':>10}{'ρ/step':>8}",
  ]
  for run in result.runs:
    back = run.norms[::-1]
    peak = back.max()
    relative = back / peak if peak > 0 else back
    row = "".join(f"{relative[d]:>10.1e}" for d in distances)
    lines.append(
      f"{run.label:<{width}}{row}{run.horizon:>9}{run.far_share:>10.1e}{run.decay_rate:>8.3f}"
    )
  lines += [
    "",
    f"horizon: steps back holding every step above {result.fraction:g} of the peak "
    f"(= T: the whole sequence still matters).",
    f"far half: share of Σ_t ‖g_t‖ from {T // 2} or more steps back.  "
    "ρ/step: fitted decay factor per step back.",
    "0.0e+00: below float32's range (underflowed).",
  ]
  return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """The options of ``gatejax vanishing`` (``gatejax vanishing --help`` lists them)."""
  parser.add_argument(
    "--cells",
    nargs="+",
    choices=CELL_KINDS,
    default=list(DEFAULT_CELLS),
    help="cells to run (default: rnn gru lstm; those with a keep-gate bias run at their "
    "default bias and with gj.chrono(T))",
  )
  parser.add_argument(
    "--time", type=cli.int_at_least(3), default=1000, help="sequence length T (>= 3)"
  )
  parser.add_argument("--hidden", type=cli.int_at_least(1), default=32, help="hidden size")
  parser.add_argument(
    "--batch", type=cli.int_at_least(1), default=16, help="sequences in the batch"
  )
  parser.add_argument("--seed", type=cli.seed, default=0, help=f"PRNG seed in [0, {cli.MAX_SEED}]")
  parser.add_argument(
    "--out",
    default="vanishing.png",
    help="path of the figure (PNG, or another format matplotlib knows by its extension), "
    "'' for none; checked before computing, replaced if it exists",
  )


# Peak bytes of one configuration's sweep, per (step, sequence, hidden unit) and per
# hidden × (hidden + input) parameter entry: fitted to XLA's memory_analysis() of
# contribution_norms on CPU (jax 0.10); the stored carries dominate, the LSTM's most.
def _estimated_bytes(
  cells: Sequence[Any], time: int, hidden: int, batch: int, input_size: int = 8
) -> float:
  """Peak memory of :func:`run_vanishing` (its largest configuration), in bytes.

  Derived from each cell (traced, never run): per step the sweep keeps the projected input,
  the carry it read, the output and its cotangent; 1.5 times that covers XLA's temporaries
  (checked against XLA's own memory analysis in the tests). Plus the parameters, twice.
  """
  largest = 0.0
  for cell in configurations(cells, max(time, 3), hidden).values():
    params = protocol.expected_params(cell, input_size)
    x = jax.ShapeDtypeStruct((batch, input_size), jnp.float32)
    px = jax.eval_shape(protocol.recurrence(cell).project, params, x)
    carry = jax.eval_shape(lambda cell=cell: cell.initial_carry((batch,)))
    step = sum(a.size for a in jax.tree.leaves((px, carry))) + 2 * batch * cell.hidden_size
    weights = sum(a.size for a in jax.tree.leaves(params))
    largest = max(largest, 4 * (1.5 * time * (step + batch * input_size) + 2 * weights))
  return largest


def _check_figure_path(out: str) -> None:
  from matplotlib.backend_bases import FigureCanvasBase

  suffix = Path(out).suffix.lower().removeprefix(".")
  formats = FigureCanvasBase.get_supported_filetypes()
  if suffix and suffix not in formats:
    raise cli.UsageError(
      f"--out {out!r}: matplotlib cannot write .{suffix} files (it writes {', '.join(sorted(formats))})"
    )
  cli.writable_file(out)


def main(args: argparse.Namespace) -> int:
  """``gatejax vanishing``: run the sweep, print the table (``--out``: draw the figure); the status."""
  # Everything that can be checked is checked before the sweeps, which may take minutes.
  if args.out:
    _check_figure_path(args.out)
  cli.check_memory(
    _estimated_bytes(args.cells, args.time, args.hidden, args.batch),
    f"--time {args.time} --hidden {args.hidden} --batch {args.batch}",
    "lower --time, --batch or --hidden",
  )
  try:
    result = run_vanishing(
      cells=args.cells, time=args.time, hidden=args.hidden, batch=args.batch, seed=args.seed
    )
  except ValueError as e:
    raise cli.UsageError(str(e)) from e
  print(format_table(result))
  print(f"\n{sum(run.seconds for run in result.runs):.1f} s for {len(result.runs)} sweeps.")
  if args.out:
    from gatejax import plots

    replaced = Path(args.out).exists()
    fig = plots.contribution_curves(
      result.curves,
      title=f"Gradient contribution against distance (T = {result.time}, hidden {result.hidden})",
    )
    fig.savefig(args.out, dpi=120)
    plots._pyplot().close(fig)
    print(f"Figure: {args.out}{' (replaced the existing file)' if replaced else ''}")
  return 0
