r"""Learning changes the horizon: how far back the gradient reaches, before and after training.

At initialisation every cell's gradient is dominated by the last steps: the seed's
"远距离的梯度消失" (the far gradient vanishes, the near one does not). Whether a cell can
*learn* a long dependency depends on whether training can open a path to the far past.
This experiment trains an Elman RNN, a GRU and an LSTM on the adding problem
(:func:`gatejax.tasks.adding`) at a length where the RNN fails, and measures on one fixed
probe batch, with the same loss the training minimises, before and after training:

* the per-step contribution norms :math:`\lVert g_t \rVert` of
  :func:`gatejax.analysis.contribution_norms` (:math:`\sum_t g_t = \partial L/\partial\theta`);
* the **horizon** (:func:`gatejax.analysis.gradient_horizon`, 1% of the peak): how many of
  the last steps still contribute;
* the **far share** (:func:`gatejax.analysis.far_share` at ``T // 2``): the share of the
  gradient signal that comes from the first half of the sequence, where the adding
  problem hides its first marked number;
* the Jacobian norms :math:`\lVert \partial c_T / \partial c_k \rVert_2`
  (:func:`gatejax.analysis.jacobian_norms`), median over the batch.

The experiment's four doors: :class:`Sizes` (:data:`FULL`, :data:`QUICK`), :func:`run`
(numbers only), :func:`to_markdown` and :func:`to_json`; :func:`figures` draws.

Example:
  >>> from gatejax.experiments import horizon
  >>> horizon.QUICK.time, horizon.QUICK.hidden, horizon.QUICK.kinds
  (20, 8, ('rnn', 'gru', 'lstm'))

  The whole experiment: ``result = horizon.run(horizon.QUICK, key=jax.random.key(0))``,
  then ``print(horizon.to_markdown(result))``.
"""

from gatejax.experiments.horizon import _measure, _write
from gatejax.experiments.horizon._findings import findings, learned
from gatejax.experiments.horizon._measure import Result, Run, Sizes, probe_model, run
from gatejax.experiments.horizon._write import figures, table, to_json, to_markdown

#: The sizes of ``gatejax report``.
FULL = _measure.FULL
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = _measure.QUICK
#: The cells trained, a plain RNN and the two classic gated cells.
KINDS = _measure.KINDS
#: The section's title in the report.
TITLE = _write.TITLE

__all__ = [
  "FULL",
  "KINDS",
  "QUICK",
  "TITLE",
  "Result",
  "Run",
  "Sizes",
  "figures",
  "findings",
  "learned",
  "probe_model",
  "run",
  "table",
  "to_json",
  "to_markdown",
]
