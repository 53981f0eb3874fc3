"""``gatejax report``: the whole argument, measured, as a markdown report with figures.

The seed article makes three claims in words: a plain RNN's gradient is dominated by the
near steps while the far ones vanish; GRU and LSTM gates fix that; and the gates must be
sigmoids, not ReLUs, because a sigmoid is a soft switch in (0, 1) while a ReLU
"suppresses one side". The report measures each claim and writes

* ``DIR/report.md``: the tables, the figures (PNG files beside it, linked relatively) and
  the findings, every sentence of which is chosen by the measured numbers;
* ``DIR/report.json``: the numbers behind them;
* ``DIR/*.png``: the figures.

It is a loop over the experiment rooms of :data:`ROOMS` (each with ``Sizes``, ``run``,
``to_markdown``, ``to_json``, ``figures`` and ``TITLE``; a new section is a new room),
plus one section of its own, the verdict on the seed's claims (:func:`verdict`), read
from sections 1 to 3. The sections: (1) vanishing gradients at initialisation
(:mod:`gatejax.experiments.vanishing`), (2) the gate experiment
(:mod:`gatejax.experiments.gates`), (3) training on the adding problem and how learning
changes the horizon (:mod:`gatejax.experiments.horizon`), (4) the verdict, (5) dynamics:
Lyapunov exponents, the gradient's decay and parallel (Newton) evaluation, before and after
training, and the edge of chaos (:mod:`gatejax.experiments.dynamics`), (6) state tracking and
the range of a gate: parity, counting and memory at lengths far beyond training, against the
range of the transition's eigenvalues (:mod:`gatejax.experiments.state_tracking`).

The directory is written whole or not at all: the files go into a staging directory beside
it, which then takes its place (``gatejax._swap``), so an interrupted run leaves the
earlier report as it was.

Run ``gatejax report`` (a few minutes on two CPU cores), ``gatejax report --quick`` (tiny
sizes, a smoke test) or ``gatejax report --full``. A room may have a third set of sizes,
``REPORT``, for the default report, when its ``FULL`` run takes too long for it: the state
tracking room runs a reduced version by default (it says so in its section) and its ``FULL``
sizes only with ``--full`` (every other room at its ``FULL`` sizes either way).
"""

from __future__ import annotations

import datetime
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import jax

import gatejax as gj
from gatejax import _format, _swap
from gatejax.experiments import _common, dynamics, gates, horizon, state_tracking, vanishing

__all__ = [
  "FILES",
  "ROOMS",
  "SECTIONS",
  "abandon",
  "check_output",
  "estimate_seconds",
  "run_experiments",
  "sizes_for",
  "verdict",
  "write_report",
]

#: The experiment rooms the report runs, in order, by the name of their section in the JSON
#: and their figures' prefix.
ROOMS: dict[str, Any] = {
  "vanishing": vanishing,
  "gates": gates,
  "horizon": horizon,
  "dynamics": dynamics,
  "state_tracking": state_tracking,
}
#: The sections in order, the rooms and the verdict on the seed's claims (which reads 1-3).
SECTIONS = ("vanishing", "gates", "horizon", "verdict", "dynamics", "state_tracking")
#: The files besides the figures (``ROOM_ROLE.png``).
FILES = ("report.md", "report.json")
_VERDICT_TITLE = "The seed's claims against the measurements"


def abandon(out: str | os.PathLike) -> None:
  """Give up a report being written to ``out`` by this process (from a signal handler, as
  ``gatejax report`` does on ^C): the earlier report stays, or comes back, in place."""
  _swap.abandon(Path(out))


def _figure_name(name: str) -> bool:
  # A room's name may hold "_" itself (state_tracking_parity.png).
  return name.endswith(".png") and any(
    name.startswith(f"{room}_") and len(name) > len(room) + 5 for room in ROOMS
  )


def check_output(out: str | os.PathLike, *, name: str = "out") -> None:
  """Check that a report can be written to ``out``; else ``ValueError`` (naming ``name``).

  ``out`` may be missing (its parent is then checked) or a directory that holds nothing but
  an earlier report (``report.md``, ``report.json`` and figures named ``ROOM_ROLE.png``),
  since the whole directory is replaced. The new report is staged beside it, so its parent
  must be writable, and a mount point cannot be replaced.

  Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from gatejax import report
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = (out / "notes.txt").write_text("mine")
    >>> report.check_output(out)
    Traceback (most recent call last):
    ValueError: out '...' holds files that are not a report's (notes.txt): the report replaces the whole directory; give a new or empty one, or an earlier report's
  """
  given, path = str(out), Path(out).resolve()
  if path.exists() and not path.is_dir():
    raise ValueError(f"{name} {given!r} exists and is not a directory")
  if path.is_dir():
    if os.path.ismount(path):
      raise ValueError(
        f"{name} {given!r} is a mount point, which cannot be replaced: give a directory in it"
      )
    foreign = sorted(
      p.name for p in path.iterdir() if p.name not in FILES and not _figure_name(p.name)
    )
    if foreign:
      shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
      raise ValueError(
        f"{name} {given!r} holds files that are not a report's ({shown}): the report replaces "
        "the whole directory; give a new or empty one, or an earlier report's"
      )
  parent = path.parent
  while not parent.exists():
    parent = parent.parent
  try:
    with tempfile.TemporaryFile(dir=parent, prefix=".gatejax-write-test-"):
      pass
  except OSError as e:
    raise ValueError(
      f"{name} {given!r}: cannot write in {str(parent)!r} ({e.strerror}), where the report is "
      "written before it replaces the directory"
    ) from None


def _trained_by_horizon(h: horizon.Result, sizes: dynamics.Sizes) -> dict[str, dynamics.Trained]:
  """The horizon room's trained models for the dynamics room, by cell, when they are the
  runs the dynamics room would make (same training sizes; both take the report's key)."""
  hs = h.sizes
  ours = (hs.hidden, hs.time, hs.batch, hs.steps, hs.learning_rate, hs.clip_norm, hs.probe_batch)
  theirs = (
    sizes.hidden,
    sizes.train_time,
    sizes.train_batch,
    sizes.train_steps,
    sizes.learning_rate,
    sizes.clip_norm,
    sizes.probe_batch,
  )
  if ours != theirs:
    return {}
  runs = {kind: h.runs.get(_common.display_name(kind)) for kind in hs.kinds}
  return {
    kind: dynamics.Trained(
      params=r.params, final_eval=r.final_eval, contributions=(r.before, r.after)
    )
    for kind, r in runs.items()
    if r is not None and r.params is not None
  }


def _mode(quick: bool, full: bool) -> str:
  if quick and full:
    raise ValueError("quick and full exclude each other: give one or neither")
  return "quick" if quick else "full" if full else "default"


def sizes_for(room: ModuleType, *, quick: bool = False, full: bool = False) -> Any:
  """A room's sizes in a report: ``QUICK`` with ``quick``, ``FULL`` with ``full``, else its
  ``REPORT`` sizes if it has them (a reduced version for the default report), else ``FULL``."""
  mode = _mode(quick, full)
  if mode == "quick":
    return room.QUICK
  return room.FULL if mode == "full" else getattr(room, "REPORT", room.FULL)


def estimate_seconds(*, quick: bool = False, full: bool = False) -> float | None:
  """What the rooms that can estimate their run (``estimate_seconds(sizes)``) expect to take,
  in seconds, at the sizes of this report; ``None`` if none can."""
  times = [
    room.estimate_seconds(sizes_for(room, quick=quick, full=full))
    for room in ROOMS.values()
    if hasattr(room, "estimate_seconds")
  ]
  return sum(times) if times else None


def run_experiments(
  *,
  quick: bool = False,
  full: bool = False,
  key: jax.Array,
  say: Callable[[str], None] | None = None,
  bar: bool = False,
) -> dict[str, Any]:
  """Every room's ``run`` at its report sizes (:func:`sizes_for`) with ``key``: name -> result.

  The dynamics room measures the horizon room's trained models instead of training them
  again (the same runs: same key, same sizes). ``bar`` shows a progress bar in the rooms
  that draw one (``run(..., bar=True)``).
  """
  _mode(quick, full)
  results: dict[str, Any] = {}
  for name, room in ROOMS.items():
    sizes = sizes_for(room, quick=quick, full=full)
    extra: dict[str, Any] = {}
    if name == "dynamics" and "horizon" in results:
      extra["trained"] = _trained_by_horizon(results["horizon"], sizes)
    if bar and "bar" in inspect.signature(room.run).parameters:
      extra["bar"] = True
    results[name] = room.run(sizes, key=key, progress=say, **extra)
  return results


def verdict(results: Mapping[str, Any]) -> list[str]:
  """One line per claim of the seed: holds, fails or undecided, from the measured numbers
  of the vanishing, gates and horizon rooms (``results`` by room name)."""
  v: vanishing.Result = results["vanishing"]
  g: gates.Result = results["gates"]
  h: horizon.Result = results["horizon"]
  out = []
  rnn = vanishing.plain_rnn(v)
  if rnn is not None:
    k = vanishing.near_steps(v)
    out.append(
      "**一, the near gradient dominates a plain RNN's**: "
      + ("holds" if vanishing.dominated_by_near_steps(v, rnn) else "did not show")
      + f" (the last {k} steps hold {vanishing.near_share(rnn, k):.0%}, horizon {rnn.horizon} "
      f"of {v.sizes.time})."
    )
  learned = [n for n, r in h.runs.items() if horizon.learned(r, h.baseline)]
  failed = [n for n in h.runs if n not in learned]
  if h.runs:
    gated_learned = [n for n in learned if n != "RNN"]
    horizons = "; ".join(
      f"{n} horizon {r.horizon_before} → {r.horizon_after} steps, far share "
      f"{r.far_before:.2g} → {r.far_after:.2g}"
      for n, r in h.runs.items()
    )
    out.append(
      "**二/三, gates let the gradient reach far**: "
      + ("holds after training" if gated_learned and "RNN" in failed else "not shown at this size")
      + f" (learned the adding problem at T = {h.sizes.time}: {', '.join(learned) or 'none'}; "
      f"did not: {', '.join(failed) or 'none'}; {horizons}). At initialisation the gated cells "
      "are near-sighted too: what gating buys is a path that training can open."
    )

  def dead(suffix: str) -> list[float]:
    return [
      a.gates[n].dead
      for acts in g.activity.values()
      for name, a in acts.items()
      if name.endswith(suffix)
      for n in a.gates
    ]

  sig_dead, relu_dead = dead(" sigmoid"), dead(" relu")
  if sig_dead and relu_dead:
    out.append(
      "**四.1, a sigmoid gate is a soft switch in (0, 1)**: "
      + ("holds" if max(sig_dead) == 0 else "partly: some sigmoid gates underflowed to 0")
      + "; **四.2, ReLU suppresses one side**: "
      + ("holds" if min(relu_dead) > 0 else "not everywhere")
      + f" ({min(relu_dead):.0%} to {max(relu_dead):.0%} of ReLU gate values are exactly 0)."
    )
  exploded = [
    f"{name} ({probe} inputs)"
    for probe, jacs in g.jacobian.items()
    for name, j in jacs.items()
    if name.endswith(" relu") and gates.exploded(j)
  ]
  if exploded:
    out.append(
      "**What the seed misses**: ReLU gates are unbounded above; a keep gate above 1 amplifies "
      "the carry, and the carry Jacobian grew instead of fading in " + ", ".join(exploded) + "."
    )
  trained = []
  for kind in gates.KINDS:
    runs = {fn: g.training.get(gates.label(kind, fn)) for fn in gates.GATE_FUNCTIONS}
    parts = [
      f"{fn} {int(t.diverged.sum())}/{t.diverged.size} diverged, median final loss "
      f"{_format.number(gates.median_final(t))}"
      for fn, t in runs.items()
      if t is not None
    ]
    if parts:
      trained.append(f"{_common.display_name(kind)}: " + ", ".join(parts))
  if trained:
    out.append(
      f"**In training** (adding problem, T = {g.sizes.train_time}, baseline {g.baseline:.3f}): "
      + "; ".join(trained)
      + ". Section 2's findings say which differences the seed's claims explain."
    )
  return out


def _save_figures(out: Path, name: str, room: ModuleType, result: Any) -> dict[str, str]:
  """Draw a room's figures into ``out`` as ``NAME_ROLE.png``; role -> file name."""
  from gatejax.plots import _pyplot

  files = {}
  for role, fig in room.figures(result).items():
    files[role] = f"{name}_{role}.png"
    fig.savefig(out / files[role], dpi=110)
    _pyplot().close(fig)
  return files


def _flag(quick: bool, full: bool) -> str:
  return " --quick" if quick else " --full" if full else ""


def _markdown(
  results: Mapping[str, Any],
  figures: Mapping[str, Mapping[str, str]],
  quick: bool,
  seconds: float,
  full: bool = False,
) -> str:
  parts = [
    "# gatejax report: why gates, and why sigmoid gates",
    f"Generated by `gatejax report{_flag(quick, full)}` on "
    f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} in {seconds:.0f} s "
    f"(JAX {jax.__version__}, {jax.default_backend()}, Python {platform.python_version()})."
    + (
      " **Quick mode: tiny sizes, a smoke test; the numbers are not meaningful.**" if quick else ""
    ),
    "Every sentence in the findings below is chosen by the measured numbers, which are also "
    "in `report.json`.",
  ]
  for number, name in enumerate(SECTIONS, 1):
    if name == "verdict":
      title, body = _VERDICT_TITLE, _common.bullets(verdict(results))
    else:
      room = ROOMS[name]
      title, body = room.TITLE, room.to_markdown(results[name], figures[name])
    parts += [f"## {number}. {title}", body]
  parts += [
    "## Reproduce",
    f"`gatejax report --out DIR{_flag(quick, full)}` (also `python -m gatejax report`).",
  ]
  return "\n\n".join(p for p in parts if p) + "\n"


def write_report(
  out: str | os.PathLike,
  *,
  quick: bool = False,
  full: bool = False,
  seed: int = 0,
  say: Callable[[str], None] | None = None,
  bar: bool = False,
) -> dict[str, Any]:
  """Run every section and write ``report.md``, ``report.json`` and the figures into ``out``.

  ``out`` is checked first (:func:`check_output`); the report is staged beside it and
  replaces it whole once written, so an interruption leaves the earlier report.

  Args:
    out: the output directory (created if missing; an earlier report there is replaced).
    quick: every room at its ``QUICK`` sizes (a smoke test).
    full: every room at its ``FULL`` sizes (the default report runs a room's ``REPORT``
      sizes where it has them); not with ``quick``.
    seed: the seed of every room's key, ``jax.random.key(seed)``.
    say: a progress callback, called with one line per stage.
    bar: progress bars in the rooms that draw one.

  Returns:
    The JSON document written to ``report.json``.
  """
  out = Path(out)
  _mode(quick, full)
  check_output(out)
  began = time.perf_counter()
  results = run_experiments(quick=quick, full=full, key=jax.random.key(seed), say=say, bar=bar)
  if say is not None:
    say("figures")
  staging = _swap.stage(out)
  try:
    figures = {
      name: _save_figures(staging, name, room, results[name]) for name, room in ROOMS.items()
    }
    seconds = time.perf_counter() - began
    (staging / "report.md").write_text(_markdown(results, figures, quick, seconds, full))
    document = {
      "command": "gatejax report" + _flag(quick, full),
      "quick": quick,
      "full": full,
      "seed": seed,
      "seconds": seconds,
      "versions": {"gatejax": gj.__version__, "jax": jax.__version__, "python": sys.version},
      "backend": jax.default_backend(),
      "figures": sorted(f for files in figures.values() for f in files.values()),
    }
    for name in SECTIONS:
      document[name] = verdict(results) if name == "verdict" else ROOMS[name].to_json(results[name])
    (staging / "report.json").write_text(json.dumps(document, indent=1, allow_nan=False))
    _swap.swap_in(staging, out)
  except BaseException:
    _swap.abandon(out)
    raise
  return document
