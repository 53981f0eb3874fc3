r"""Vanishing gradients at initialisation: how much each earlier step still contributes.

Every configuration reads the same random inputs (unit normal, ``T × batch × 8``) from
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
* the modern cells at their official initialisations: ``slstm`` and ``mlstm`` (xLSTM),
  ``rg_lru``, ``s6``, ``lru`` (their Jacobian ``diag(a_t)`` too, from the input alone) and
  ``delta_net`` (a matrix ``a_t``); :attr:`Run.form` records which;
* any cell given as a value, a user's included.

The experiment's four doors: :class:`Sizes` (:data:`FULL`, :data:`QUICK`), :func:`run`
(numbers only), :func:`to_markdown` and :func:`to_json`; :func:`figures` draws and
:func:`format_table` writes a table for a terminal (``gatejax vanishing``).

Example:
  >>> from gatejax.experiments import vanishing
  >>> vanishing.QUICK.cells, vanishing.QUICK.time
  (('rnn', 'lstm', 'min_gru'), 30)
  >>> list(vanishing.configurations(vanishing.QUICK.cells, 30, 8))
  ['rnn (tanh)', 'lstm, forget_bias=1', 'lstm, chrono(30)', 'min_gru']

  The whole experiment: ``result = vanishing.run(vanishing.QUICK, key=jax.random.key(0))``,
  then ``print(vanishing.to_markdown(result))``.
"""

from gatejax.experiments.vanishing import _measure, _write
from gatejax.experiments.vanishing._findings import (
  dominated_by_near_steps,
  findings,
  near_share,
  near_steps,
  plain_rnn,
)
from gatejax.experiments.vanishing._measure import (
  Result,
  Run,
  Sizes,
  configurations,
  estimated_bytes,
  run,
)
from gatejax.experiments.vanishing._write import (
  figures,
  format_table,
  table,
  to_json,
  to_markdown,
)

#: The sizes of ``gatejax report``: every built-in cell over 200 steps.
FULL = _measure.FULL
#: Tiny sizes for ``gatejax report --quick`` and the tests.
QUICK = _measure.QUICK
#: Every built-in cell, by the name of its factory (``gatejax vanishing --cells`` takes these).
CELL_KINDS = _measure.CELL_KINDS
#: The section's title in the report.
TITLE = _write.TITLE
#: The distances ``d`` (steps back) that :func:`format_table` prints, those below ``T``.
DISTANCES = _write.DISTANCES

__all__ = [
  "CELL_KINDS",
  "DISTANCES",
  "FULL",
  "QUICK",
  "TITLE",
  "Result",
  "Run",
  "Sizes",
  "configurations",
  "dominated_by_near_steps",
  "estimated_bytes",
  "figures",
  "findings",
  "format_table",
  "near_share",
  "near_steps",
  "plain_rnn",
  "run",
  "table",
  "to_json",
  "to_markdown",
]
