"""Write the canned results of ``tests/canned.py``: each room of the report, QUICK, seed 0.

The same runs as ``gatejax report --quick`` (:func:`gatejax.report.run_experiments`). Run it
from the repository root when a room's Result types change, or what a QUICK run measures:

    PYTHONPATH=src:tests python tests/data/make_canned.py

Two things are left out to keep the files small (``canned.trim``): the horizon room's
trained parameters and all but the first values of each gate's histogram sample.
"""

import jax

import canned
from gatejax import report


def main() -> None:
  results = report.run_experiments(quick=True, key=jax.random.key(0), say=print)
  for name, result in results.items():
    print(canned.save(name, result))


if __name__ == "__main__":
  main()
