r"""Where a recurrent gradient comes from: per-step contributions, carry adjoints, Jacobian norms.

A recurrent network applies the same parameters :math:`\theta` at every step,
:math:`c_{t+1} = f(\theta, c_t, x_t)`, so the gradient of a loss is a sum over steps,

.. math::

  \frac{\partial L}{\partial \theta} = \sum_{t=0}^{T-1} g_t, \qquad
  g_t = \Big(\frac{\partial L}{\partial c_{t+1}}\Big)^{\!\top}
        \frac{\partial f}{\partial \theta}(\theta, c_t, x_t),

and the adjoint :math:`\partial L / \partial c_{t+1}` of a step far from the loss carries a
product of many step Jacobians :math:`\partial c_{s+1} / \partial c_s`. When those products
shrink, the far terms :math:`g_t` fade and the gradient is made of the near steps only:
that is what *vanishing* means (the gradient is not zero; the distant past stops mattering).
This module measures it exactly, for any :class:`~gatejax.cells.Cell`.

Conventions (``T`` steps, step ``t = 0 .. T-1`` reads ``xs[t]``):

* carries are numbered as in ``jacobian_norms``: :math:`c_0` is the initial carry and
  :math:`c_k` the carry after ``k`` steps, so step ``t`` maps :math:`c_t` to :math:`c_{t+1}`
  and :math:`c_T` is the final carry;
* **steps back**: step ``t`` lies ``T - 1 - t`` steps back from the last step (the last
  step is 0 steps back), so ``curve[::-1][d]`` is the value ``d`` steps back. For
  ``jacobian_norms`` the *distance* of entry ``k`` is ``T - k`` Jacobian factors (the last
  entry is distance 1);
* every cell here outputs its hidden state, ``y_t = h_{t+1}`` read from the new carry, so the
  loss reaches a carry both through that step's output and through the final carry.

Every sweep is one forward scan that stores the carries and one reverse scan that applies
``jax.vjp`` of the cell's own ``step`` at each step, the cost of a gradient with
rematerialisation, never one ``jax.grad`` per step. ``lengths`` and ``carry`` mean what they
mean in :func:`gatejax.scan`: a step past a sequence's length holds its carry, outputs zero,
and contributes exactly zero.

The summaries (:func:`gradient_horizon`, :func:`near_share`, :func:`far_share`,
:func:`decay_rate`) turn a curve into the number a reader looks for, and
:func:`gate_statistics` records what the gates do along a sequence.

Every name is reached as ``gatejax.analysis.<name>``; the rooms:
:mod:`~gatejax.analysis.gradients` (contributions and carry adjoints),
:mod:`~gatejax.analysis.jacobians` (Jacobian norms), :mod:`~gatejax.analysis.curves` (pure
summaries of a curve) and :mod:`~gatejax.analysis.gates` (gate statistics).
"""

from gatejax.analysis.curves import decay_rate, far_share, gradient_horizon, near_share
from gatejax.analysis.gates import GateStatistics, Summary, gate_statistics
from gatejax.analysis.gradients import carry_gradients, contribution_norms, step_contributions
from gatejax.analysis.jacobians import jacobian_norms

__all__ = [
  "GateStatistics",
  "Summary",
  "carry_gradients",
  "contribution_norms",
  "decay_rate",
  "far_share",
  "gate_statistics",
  "gradient_horizon",
  "jacobian_norms",
  "near_share",
  "step_contributions",
]
