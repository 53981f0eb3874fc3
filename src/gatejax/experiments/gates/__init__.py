r"""The gate experiment: sigmoid, hard sigmoid and ReLU as the gate function of GRU and LSTM.

The seed article argues in words that a gate must be a sigmoid: its values lie in
:math:`(0, 1)`, so a gate is a soft switch that keeps everything at 1 and discards
everything at 0, and it is differentiable everywhere; a ReLU "suppresses one side", so a
gate unit pushed below zero stops responding. This module turns that into measurements,
for one cell at a time with only ``gate_fn`` changed (everything else, initialisation
included, stays as :func:`gatejax.gru` and :func:`gatejax.lstm` make it):

* ``sigmoid``: :math:`\sigma(a) = 1 / (1 + e^{-a})`, the standard gate;
* ``hard_sigmoid``: :func:`jax.nn.hard_sigmoid`, :math:`\mathrm{relu6}(a + 3) / 6 =
  \mathrm{clip}(a / 6 + 1/2, 0, 1)` (PyTorch's ``Hardsigmoid``): bounded to
  :math:`[0, 1]` like the sigmoid but piecewise linear, exactly 0 or 1 (zero slope) for
  :math:`|a| \ge 3`. It separates "bounded" from "smooth";
* ``relu``: :math:`\max(a, 0)`: exactly 0 for :math:`a < 0` (the seed's one-sided
  suppression) and *unbounded* above, so a keep gate (GRU ``z``, LSTM ``f``) can exceed 1
  and multiply the carry up instead of passing it on.

Three parts, each over several seeds:

(a) **at initialisation**, along a sequence: the size of the hidden state (and the LSTM's
    memory cell) per step, and per gate the fraction of values that are dead (exactly 0),
    shut (< 0.1), open (in (0.9, 1]) and above 1, plus the fraction of units dead along
    the whole batch;
(b) **the carry path**: :func:`gatejax.analysis.jacobian_norms`,
    :math:`\lVert \partial c_T / \partial c_k \rVert_2` against the distance
    :math:`T - k`, and its fitted per-step factor (:func:`gatejax.analysis.decay_rate`):
    below 1 the far past fades, above 1 it is amplified (exploding gradients);
(c) **training** on the adding problem (:func:`gatejax.tasks.adding`) with
    :func:`gatejax.train.fit`: the final error against the always-predict-1 baseline and
    the fraction of runs that diverge.

(a) and (b) run on two kinds of input with the same parameters: the adding problem's own
inputs (values in [0, 1], two marks: what (c) trains on) and unit Gaussian inputs of the
same size, a stress test of larger pre-activations.

The experiment's four doors: :class:`Sizes` (:data:`FULL`, :data:`QUICK`), :func:`run`
(numbers only), :func:`to_markdown` and :func:`to_json`; :func:`figures` draws, the
tables (:func:`activity_table`, ...) and :func:`findings` are the parts of the markdown.

Example:
  >>> import jax, jax.numpy as jnp
  >>> import gatejax as gj
  >>> from gatejax.experiments import gates
  >>> cell = gates.gate_cell("gru", "relu", 4)         # gj.gru(4, gate_fn=jax.nn.relu)
  >>> params = cell.init(jax.random.key(0), 2)
  >>> _, _, g = gj.scan_with_gates(cell, params, jnp.ones((3, 2)))
  >>> bool((g.z >= 0).all())                           # >= 0, but not bounded by 1
  True

  The whole experiment: ``result = gates.run(gates.QUICK, key=jax.random.key(0))``,
  then ``print(gates.to_markdown(result))``.
"""

from gatejax.experiments.gates import _measure, _write
from gatejax.experiments.gates._findings import exploded, findings, learned, median_final
from gatejax.experiments.gates._measure import (
  Activity,
  GateFractions,
  JacobianSummary,
  Result,
  Sizes,
  TrainingSummary,
  gate_cell,
  label,
  run,
)
from gatejax.experiments.gates._write import (
  activity_table,
  divergence_threshold,
  figures,
  jacobian_table,
  to_json,
  to_markdown,
  trained_activity_table,
  training_table,
)

#: The sizes of ``gatejax report``.
FULL = _measure.FULL
#: Tiny sizes for ``gatejax report --quick`` and the tests; it trains the LSTM's two extremes.
QUICK = _measure.QUICK
#: The gate functions compared, by name (the only thing that differs between the runs).
GATE_FUNCTIONS = _measure.GATE_FUNCTIONS
#: The gated cells whose gate function is swapped.
KINDS = _measure.KINDS
#: The inputs of parts (a) and (b), the adding problem's and unit Gaussians.
PROBES = _measure.PROBES
#: The section's title in the report.
TITLE = _write.TITLE

__all__ = [
  "FULL",
  "GATE_FUNCTIONS",
  "KINDS",
  "PROBES",
  "QUICK",
  "TITLE",
  "Activity",
  "GateFractions",
  "JacobianSummary",
  "Result",
  "Sizes",
  "TrainingSummary",
  "activity_table",
  "divergence_threshold",
  "exploded",
  "figures",
  "findings",
  "gate_cell",
  "jacobian_table",
  "label",
  "learned",
  "median_final",
  "run",
  "to_json",
  "to_markdown",
  "trained_activity_table",
  "training_table",
]
