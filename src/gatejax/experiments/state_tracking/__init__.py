r"""State tracking and the range of a gate (SPEC §8, issue 19).

The seed argues that a gate belongs in (0, 1). For a recurrence *linear in its carry* (minGRU,
minLSTM, S6, DeltaNet, mLSTM, RG-LRU) the transition's eigenvalues are then in [0, 1], and a
finite-precision recurrence of that kind cannot track parity at every length (Grazzi et al.,
ICLR 2025, Theorem 1; Sarrof et al. 2024); eigenvalues in (−1, 1) can, counting mod 5 needs
complex ones (Theorem 2), and nonlinear cells (RNN, GRU, LSTM, sLSTM) do both (Deletang et
al. 2023). The experiment trains one layer of each cell and measures:

* **E1**, parity against the transition's range: accuracy at lengths far beyond training
  (:func:`gatejax.train.accuracy_by_length`), every seed and learning rate reported;
* **E2**, on every parity model: λ_max (:func:`gatejax.dynamics.largest_lyapunov_exponent`),
  the gradient horizon (:func:`gatejax.analysis.gradient_horizon`) and the **state
  separation** (:func:`separation`: the distance between the label classes' mean final state
  over the within-class spread) against length, and which of the three predicts where
  accuracy fails;
* **E3**, cycle navigation mod 5: real-diagonal cells against the complex LRU and nonlinear
  cells;
* **E4**, flip-flop, the positive control: memory needs no more than (0, 1);
* **E5**, stability: minGRU's keep coefficient in (0, 1), (−1, 1) and (0, 2)
  (``gate_fn=tanh``): divergence, λ_max, gradient norms;

and sets the numbers beside the published ones (:data:`PUBLISHED`).

The room's doors: :class:`Sizes` (:data:`FULL` for ``gatejax report --full`` and notebook 08,
:data:`REPORT` for the default report, :data:`QUICK`), :func:`run`, :func:`to_markdown`,
:func:`to_json` and :func:`from_json`, :func:`figures`, :func:`findings`;
:func:`estimate_seconds` says up front how long a run takes.

Example:
  >>> from gatejax.experiments import state_tracking
  >>> state_tracking.FULL.test_lengths
  (10, 40, 80, 160, 256, 512)
  >>> state_tracking.label("min_gru/neg"), state_tracking.label("gru")
  ('minGRU (−1, 1)', 'GRU')
"""

from gatejax.experiments.state_tracking import _measure, _write
from gatejax.experiments.state_tracking._findings import (
  Predictors,
  findings,
  learned,
  predictors,
  rank_correlation,
  scaled,
)
from gatejax.experiments.state_tracking._measure import (
  FlipRun,
  Result,
  Run,
  Sizes,
  Variant,
  build,
  check_sizes,
  estimate_seconds,
  label,
  run,
  runs_of,
  separation,
)
from gatejax.experiments.state_tracking._write import (
  Published,
  accuracy_table,
  figures,
  flip_table,
  from_json,
  literature_table,
  runs_table,
  stability_table,
  to_json,
  to_markdown,
)

#: The sizes of ``gatejax report --full`` and notebook 08.
FULL = _measure.FULL
#: The default report's reduced sizes.
REPORT = _measure.REPORT
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = _measure.QUICK
#: The section's title in the report.
TITLE = _write.TITLE
#: The cell variants by key, ``KIND`` with its default gates, ``KIND/neg`` with
#: ``negative_eigenvalues=True`` and ``min_gru/tanh`` with ``gate_fn=tanh`` (keep in (0, 2)).
VARIANTS = _measure.VARIANTS
#: The published numbers the experiment is compared with (Grazzi et al. 2025 Table 3,
#: Deletang et al. 2023 Table 2, Liu et al. 2023's flip-flop LSTM).
PUBLISHED = _write.PUBLISHED

__all__ = [
  "FULL",
  "PUBLISHED",
  "QUICK",
  "REPORT",
  "TITLE",
  "VARIANTS",
  "FlipRun",
  "Predictors",
  "Published",
  "Result",
  "Run",
  "Sizes",
  "Variant",
  "accuracy_table",
  "build",
  "check_sizes",
  "estimate_seconds",
  "figures",
  "findings",
  "flip_table",
  "from_json",
  "label",
  "learned",
  "literature_table",
  "predictors",
  "rank_correlation",
  "run",
  "runs_of",
  "runs_table",
  "scaled",
  "separation",
  "stability_table",
  "to_json",
  "to_markdown",
]
