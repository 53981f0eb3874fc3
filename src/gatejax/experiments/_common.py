"""What every experiment shares: cells and tasks by name, what "learned" means, how sentences read.

* **Cells by name**: :data:`CELLS` is the one table of built-in cells (the name of each
  factory), :func:`cell` builds one with options, :func:`keep_bias` names the option that
  ``gj.chrono(T)`` sets and :func:`display_name` how tables print it.
* **Tasks by name**: :data:`TASKS` and :func:`task`.
* **Learned**: a run learned a task when its evaluation loss is below
  :data:`LEARNED_FRACTION` (a tenth) of the task's baseline (:func:`learned`). On the
  adding problem the baseline (always predict 1) is ``1/6``; a model that reads only the
  nearer marked number, and guesses the mean for the other, reaches ``1/12``, half the
  baseline: half is what a short memory gets, a tenth is solving the task.
* **Sentences**: :func:`pct`, :func:`signed` and :func:`bullets` write numbers and lists
  the same way in every experiment's findings (numbers to three digits:
  :func:`gatejax._format.number`).

Example:
  >>> from gatejax.experiments import _common
  >>> _common.cell("lstm", 8).name, _common.keep_bias("gru"), _common.display_name("min_gru")
  ('gj.lstm(8)', 'update_bias', 'minGRU')
  >>> _common.learned(0.01, baseline=1 / 6), _common.learned(1 / 12, baseline=1 / 6)
  (True, False)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

from gatejax import protocol, tasks
from gatejax.cells import Bias, names

__all__ = [
  "CELLS",
  "HORIZON_FRACTION",
  "LEARNED_FRACTION",
  "TASKS",
  "bullets",
  "cell",
  "default_option",
  "display_name",
  "keep_bias",
  "learned",
  "pct",
  "signed",
  "task",
  "title",
]

#: The one table of cells by name: every built-in family's own list (gatejax.cells.names).
CELLS: dict[str, Callable[..., Any]] = names.CELLS
#: Tasks by name (each factory takes the sequence length first).
TASKS: dict[str, Callable[..., tasks.Task]] = {"adding": tasks.adding}
#: A run learned a task when its evaluation loss is below this fraction of the baseline.
LEARNED_FRACTION = 0.1
#: The gradient horizon's threshold, the steps whose contribution reaches 1% of the peak.
HORIZON_FRACTION = 0.01


def _check_name(name: str, table: dict[str, Any], what: str) -> None:
  if name not in table:
    raise ValueError(f"{what} must be one of {tuple(table)}, got {name!r}")


@functools.lru_cache(maxsize=64)  # bounded: a long sweep must not grow it forever
def _cell(name: str, hidden: int, options: tuple[tuple[str, Any], ...]) -> Any:
  return CELLS[name](hidden, **dict(options))


def cell(name: str, hidden: int, **options: Any) -> Any:
  """The cell ``CELLS[name](hidden, **options)``, one value per arguments (cached).

  Cells compare equal by value, so a cached one changes no result: it saves rebuilding.

  Example:
    >>> import jax
    >>> cell("gru", 4, gate_fn=jax.nn.relu).options.gate_fn is jax.nn.relu
    True
  """
  _check_name(name, CELLS, "cell")
  return _cell(name, hidden, tuple(sorted(options.items())))


def keep_bias(name: str) -> str | None:
  """The option of a cell's factory that sets its keep gate's bias (what ``gj.chrono(T)``
  initialises: ``forget_bias``, ``update_bias``), read from its signature; ``None`` if none.

  Example:
    >>> keep_bias("lstm"), keep_bias("rnn")
    ('forget_bias', None)
  """
  _check_name(name, CELLS, "cell")
  # Only an option typed ``Bias`` takes ``gj.chrono``; sLSTM's ``forget_bias`` ("powerlaw" or a
  # float) is a keep-gate bias too, but its official init is not chrono's.
  options = inspect.signature(CELLS[name]).parameters.values()
  return next((p.name for p in options if p.annotation in ("Bias", Bias)), None)


def default_option(name: str, option: str) -> Any:
  """The default value of a factory's option, from its signature.

  Example:
    >>> default_option("lstm", "forget_bias")
    1.0
  """
  return inspect.signature(CELLS[name]).parameters[option].default


def display_name(name: str) -> str:
  """How tables and sentences print a cell: its family's own spelling
  (:data:`gatejax.cells.names.DISPLAY_NAMES`), else the name itself.

  Example:
    >>> [display_name(n) for n in ("rnn", "gru", "minimal_rnn", "min_lstm")]
    ['RNN', 'GRU', 'minimalRNN', 'minLSTM']
  """
  return names.DISPLAY_NAMES.get(name, name)


def title(cell: Any) -> str:
  """How tables and sentences print a cell: its own ``title`` (a built-in cell's family,
  ``"minGRU"``), else :func:`gatejax.protocol.describe`.

  Example:
    >>> import gatejax as gj
    >>> title(gj.rg_lru(8)), title(cell("min_gru", 8))
    ('RG-LRU', 'minGRU')
  """
  shown = getattr(cell, "title", None)
  return shown if isinstance(shown, str) and shown else protocol.describe(cell)


def task(name: str, time: int, **options: Any) -> tasks.Task:
  """The task ``TASKS[name](time, **options)``.

  Example:
    >>> task("adding", 20).baseline
    0.1666...
  """
  _check_name(name, TASKS, "task")
  return TASKS[name](time, **options)


def learned(loss: float, baseline: float) -> bool:
  """Whether an evaluation loss is below :data:`LEARNED_FRACTION` of the task's baseline
  (a NaN loss, a diverged run, never learned)."""
  return math.isfinite(loss) and loss < LEARNED_FRACTION * baseline


def pct(x: float) -> str:
  """A fraction as a percentage to one decimal; ``n/a`` when it is not finite.

  Example:
    >>> pct(0.1234), pct(float("nan"))
    ('12.3%', 'n/a')
  """
  return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def signed(x: float) -> str:
  """A per-step rate with its sign to three decimals (``+0.012``); ``nan``/``inf`` as such."""
  return f"{x:+.3f}" if math.isfinite(x) else str(x)


def bullets(lines: Iterable[str]) -> str:
  """Sentences as a markdown list, one per line."""
  return "\n".join(f"- {line}" for line in lines)
