r"""Sequence tasks, each a pure function of a PRNG key, time-major like :func:`gatejax.scan`.

A :class:`Task` is an immutable, hashable value: equal arguments give equal tasks, so a
jitted training step that takes the task as a static argument compiles once for them.
Its ``sample(key, batch_size)`` draws a :class:`Batch` at the task's training lengths,
``sample(key, batch_size, length=n)`` at exactly ``n`` steps, so one task value serves
training on short sequences and evaluation on long ones (jitted once per
``(batch_size, length)``). Its ``loss`` scores a model's predictions on a batch; its
``baseline`` is the loss of the trivial predictor that a model must beat to show it has
used the sequence at all; for classification, ``metric`` is the accuracy and ``chance``
the accuracy of uniform guessing, and :func:`scaled_accuracy` maps chance to 0 and a
perfect score to 1.

=============================  ======  ======  ======  ==============  =========  ==============
task                           input   output  time    scored          chance     baseline
=============================  ======  ======  ======  ==============  =========  ==============
:func:`adding`                 2       1       T       last step       (none)     1/6 (MSE)
:func:`copy_memory`            S + 2   S + 1   D + 2K  every step      1/S        K log S/(D+2K)
:func:`digits`                 1       10      64      last step       1/10       log 10
:func:`parity`                 2       2       ≤ 40    last step       1/2        log 2
:func:`modular_arithmetic`     m + 4   m       ≤ 39    last step       1/m        log m
:func:`cycle_navigation`       3       m       ≤ 40    last step       1/m        log m
:func:`flip_flop`              5       2       64      reads (mask)    1/2        log 2
:func:`mqar`                   V       V       64      queries (mask)  1/(V/2)    log(V/2)
:func:`selective_copy`         V       V       256     last M (mask)   1/(V − 2)  log(V − 2)
=============================  ======  ======  ======  ==============  =========  ==============

(``S`` symbols, delay ``D``, ``K`` symbols to copy; ``m`` the modulus; ``V`` the
vocabulary, ``M`` the tokens to copy; "≤ 40": training lengths drawn per sequence up to
``max_length``, right-padded, ``Batch.lengths``; :func:`adding` is a regression, scored by
its mean squared error, with no accuracy and no chance.)

Readouts: ``"last"`` tasks are scored on the model's output at each sequence's last
valid step, predictions of shape ``(batch, output_size)``; ``"all"`` tasks on the
outputs of every step, ``(time, batch, output_size)``, of which ``loss`` and ``metric``
read only the steps that ``Batch.mask`` marks when it is given (reads, queries, the
copy). Classification predictions are logits; token inputs are one-hot.

The state-tracking tasks (:func:`parity`, :func:`modular_arithmetic`,
:func:`cycle_navigation`) follow ``google-deepmind/neural_networks_chomsky_hierarchy``,
:func:`flip_flop` Liu et al. 2023, :func:`mqar` Zoology's ``multiquery_ar`` and
:func:`selective_copy` s4's ``copying.py``; each factory says where it differs.
:mod:`gatejax.tasks.names` finds a factory by its name. The package keeps one file per
task (``_parity.py``, ...) beside ``_base.py``, the pieces every task shares; they are
private so that each public name is documented once, here.
"""

from gatejax.tasks._adding import adding
from gatejax.tasks._base import (
  Batch,
  Task,
  accuracy,
  cross_entropy,
  scaled_accuracy,
  sequence_accuracy,
)
from gatejax.tasks._copy_memory import copy_memory
from gatejax.tasks._cycle_navigation import cycle_navigation
from gatejax.tasks._digits import digits
from gatejax.tasks._flip_flop import flip_flop
from gatejax.tasks._modular_arithmetic import modular_arithmetic
from gatejax.tasks._mqar import mqar
from gatejax.tasks._parity import parity
from gatejax.tasks._selective_copy import selective_copy

__all__ = [
  "Batch",
  "Task",
  "accuracy",
  "adding",
  "copy_memory",
  "cross_entropy",
  "cycle_navigation",
  "digits",
  "flip_flop",
  "modular_arithmetic",
  "mqar",
  "parity",
  "scaled_accuracy",
  "selective_copy",
  "sequence_accuracy",
]
