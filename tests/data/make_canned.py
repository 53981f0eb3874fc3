"""Write the canned results of ``tests/canned.py``: each room of the report, QUICK, seed 0.

The same runs as ``gatejax report --quick`` (:func:`gatejax.report.run_experiments`). Run it
from the repository root when a room's Result types change, or what a QUICK run measures:

    PYTHONPATH=src:tests python tests/data/make_canned.py

Two things are left out to keep the files small: the horizon room's trained parameters
(``Run.params``, for the dynamics room in the same process) and all but the first
:data:`SAMPLES` values of each gate's histogram sample.
"""

import jax

import canned
from gatejax import report

#: Values kept of each gate's histogram sample.
SAMPLES = 64


def _trim(result):
  """The result as canned: without parameters, with short histogram samples."""
  name = type(result).__module__.split(".")[2]
  if name == "horizon":
    return result._replace(runs={n: r._replace(params=None) for n, r in result.runs.items()})
  if name == "gates":

    def short(activity):
      return activity._replace(samples={g: v[:SAMPLES] for g, v in activity.samples.items()})

    return result._replace(
      activity={p: {n: short(a) for n, a in acts.items()} for p, acts in result.activity.items()},
      training={
        n: t._replace(after=None if t.after is None else short(t.after))
        for n, t in result.training.items()
      },
    )
  return result


def main() -> None:
  results = report.run_experiments(quick=True, key=jax.random.key(0), say=print)
  for name, result in results.items():
    print(canned.save(name, _trim(result)))


if __name__ == "__main__":
  main()
