r"""Dynamics: how fast a cell forgets, measured three ways, and what it costs to run it in parallel.

For every cell, at initialisation and (the cells of ``Sizes.train_cells``, by default the
classic and minimal ones, :data:`TRAINED_KINDS`) after training on the adding problem
(:func:`gatejax.tasks.adding`, with :func:`gatejax.train.fit`), on one fixed probe batch:

* the **largest Lyapunov exponent** :math:`\lambda_{\max}`
  (:func:`gatejax.dynamics.largest_lyapunov_exponent`, natural log per step, averaged over
  the probe's sequences after a transient of a tenth of the steps): below 0 a perturbation
  of the carry shrinks by :math:`e^{\lambda_{\max}}` per step, above 0 it grows (chaos);
* the **gradient horizon** and the fitted per-step **decay factor** :math:`\rho` of the
  contribution norms :math:`\lVert g_t \rVert` (:func:`gatejax.analysis.contribution_norms`,
  :func:`~gatejax.analysis.gradient_horizon`, :func:`~gatejax.analysis.decay_rate`) of the
  training loss;
* the **Newton sweeps** of :func:`gatejax.parallel_scan` (``"deer"`` and ``"quasi"``) to
  reach its tolerance at several lengths ``T`` on the task's inputs, capped at
  ``max_iter``; a run that did not converge (``info.converged``) is reported as such.

Theory, stated so that the numbers can test it: the contribution of the step ``d`` steps
back reaches the loss through the ``d`` step Jacobians after it,
:math:`\lVert g_{T-1-d} \rVert \approx \lVert \bar\ell\, J_{T-1} \cdots J_{T-d}\, \partial_\theta f \rVert`,
and a product of ``d`` Jacobians grows or shrinks as :math:`e^{\lambda_{\max} d}`, so

.. math:: \log \rho \approx \lambda_{\max}.

Both measure the mean log-contraction per step along the dominant direction; they differ
because the contributions also carry the read-out and each step's parameter Jacobian
:math:`\partial_\theta f` (not constant along the sequence), are fitted over the whole
curve of one batch-summed loss, and :math:`\lambda_{\max}` is an average over the
trajectory of each sequence. The experiment reports :math:`\log\rho` beside
:math:`\lambda_{\max}` for every cell and every point of the sweep below.

Predictability (Gonzalez et al., "Predictability enables parallelization of nonlinear
state space models", 2025): with :math:`\lambda_{\max} < 0` Newton's method over the whole
sequence (DEER) converges in a number of sweeps that barely grows with ``T``; with
:math:`\lambda_{\max} > 0` its linear solves amplify errors by up to
:math:`e^{\lambda_{\max} T}` and the sweeps grow towards ``T`` (each sweep is only
guaranteed to fix one more step). The **edge of chaos** sweep reproduces this on a tanh RNN
with :math:`W_h = g\,N`, :math:`N_{ij} \sim \mathcal N(0, 1/H)`, zero bias and weak
Gaussian inputs, over gains ``g`` from 0.5 to 3: :math:`\lambda_{\max}` crosses 0 near
``g = 1`` (a little above: the inputs stabilise), and the sweeps go from flat in ``T`` to
growing with it or failing.

Cells affine in their carry (minGRU, minLSTM, RG-LRU, S6, DeltaNet) offer ``affine`` and
are solved by one associative scan: one sweep at every ``T``, exactly. The modern cells
(sLSTM, mLSTM, RG-LRU, S6, DeltaNet) are measured at their official initialisation only
by default, to keep the report's time; LRU's complex carry enters as its real and
imaginary parts (two exponents ``log|λ_j|`` per state).

The experiment's four doors: :class:`Sizes` (:data:`FULL`, :data:`QUICK`), :func:`run`
(numbers only), :func:`to_markdown` and :func:`to_json`; :func:`figures` draws, the
tables (:func:`cell_table`, :func:`sweep_table`) and :func:`findings` are the parts of
the markdown.

Example:
  >>> import jax
  >>> from gatejax.experiments import dynamics
  >>> dynamics.QUICK.cells, dynamics.QUICK.times
  (('lstm', 'min_gru'), (20, 100))
  >>> dynamics.length_groups((100, 1000, 10_000))    # lengths that share one solve
  ((100, 1000), (10000,))

  The whole experiment: ``result = dynamics.run(dynamics.QUICK, key=jax.random.key(0))``,
  then ``print(dynamics.to_markdown(result))``.
"""

from gatejax.experiments.dynamics import _measure, _write
from gatejax.experiments.dynamics._findings import (
  agreement,
  classify,
  crossing,
  findings,
  lyapunov_and_decay,
  method_name,
  sweeps_text,
)
from gatejax.experiments.dynamics._measure import (
  CellRun,
  GainPoint,
  Measurement,
  Result,
  Sizes,
  Sweeps,
  Trained,
  length_groups,
  run,
)
from gatejax.experiments.dynamics._write import (
  cell_table,
  figures,
  sweep_table,
  to_json,
  to_markdown,
)

#: The sizes of ``gatejax report``.
FULL = _measure.FULL
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = _measure.QUICK
#: The cells the experiment measures, by the names of their factories (every built-in cell
#: whose carry is real).
KINDS = _measure.KINDS
#: The cells ``FULL`` trains (the classic and minimal ones); the others are measured at
#: initialisation only.
TRAINED_KINDS = _measure.TRAINED_KINDS
#: The Newton methods of :func:`gatejax.parallel_scan` whose sweeps are counted.
METHODS = _measure.METHODS
#: The section's title in the report.
TITLE = _write.TITLE

__all__ = [
  "FULL",
  "KINDS",
  "METHODS",
  "QUICK",
  "TITLE",
  "TRAINED_KINDS",
  "CellRun",
  "GainPoint",
  "Measurement",
  "Result",
  "Sizes",
  "Sweeps",
  "Trained",
  "agreement",
  "cell_table",
  "classify",
  "crossing",
  "figures",
  "findings",
  "length_groups",
  "lyapunov_and_decay",
  "method_name",
  "run",
  "sweep_table",
  "sweeps_text",
  "to_json",
  "to_markdown",
]
