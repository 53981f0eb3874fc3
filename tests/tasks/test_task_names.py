"""gatejax.tasks.names: every public factory, by its own name, from the task files' lists."""

import inspect

import gatejax as gj
from gatejax import tasks
from gatejax.tasks import names


def test_every_factory_by_its_name():
  factories = {
    name: obj
    for name, obj in vars(tasks).items()
    if name in tasks.__all__
    and inspect.isfunction(obj)
    and "Task" in str(obj.__annotations__.get("return"))
  }
  assert dict(names.TASKS) == factories
  assert set(names.TASKS) == {
    "adding", "copy_memory", "digits", "parity", "modular_arithmetic",
    "cycle_navigation", "flip_flop", "mqar", "selective_copy",
  }  # fmt: skip


def test_make_builds_the_factory_value():
  assert names.make("mqar", length=32, num_pairs=2) == tasks.mqar(32, 2)
  assert gj.tasks.names.TASKS["adding"] is tasks.adding
