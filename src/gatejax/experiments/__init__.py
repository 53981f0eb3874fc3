"""The experiments behind the ``gatejax`` command and the report, one room each.

Every room has the same four doors: ``Sizes`` (a NamedTuple with ``FULL`` and ``QUICK``
values), ``run(sizes, *, key) -> Result`` (numbers only: no printing, no files),
``to_markdown(result) -> str`` and ``to_json(result) -> dict``; the report's rooms also
draw (``figures(result)``) and name their section (``TITLE``). Measuring, reading
(findings) and writing live apart inside a room; what rooms share (cells and tasks by
name, what "learned" means, how sentences write numbers) is in ``_common``.

* :mod:`gatejax.experiments.vanishing`: vanishing gradients at initialisation;
* :mod:`gatejax.experiments.gates`: sigmoid, hard sigmoid and ReLU as gate functions;
* :mod:`gatejax.experiments.horizon`: learning changes the gradient's horizon;
* :mod:`gatejax.experiments.dynamics`: Lyapunov exponents and parallel evaluation;
* :mod:`gatejax.experiments.state_tracking`: state tracking and the range of a gate (parity,
  counting and memory far beyond the training length);
* :mod:`gatejax.experiments.demo`: the short demonstration of ``gatejax demo``.
"""
