"""The demonstration's room: its profile against a loop over the steps, its writing, its memory."""

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax.experiments import demo


def test_profile_is_the_input_gradient_of_the_last_output():
  """Reference: the gradient of ‖y_T‖² through a Python loop over ``step``, per input step."""
  cell = gj.gru(3)
  params = cell.init(jax.random.key(0), 2)
  xs = jax.random.normal(jax.random.key(1), (6, 2, 2))

  def loss(xs):
    carry = cell.initial_carry((2,))
    for x in xs:
      carry, y = cell.step(params, carry, x)
    return jnp.sum(y**2)

  grads = jax.jit(jax.grad(loss))(xs)
  expected = np.sqrt(np.sum(np.asarray(grads) ** 2, axis=-1)).mean(axis=-1)
  profile = demo.input_gradient_profile(cell, params, xs)
  np.testing.assert_allclose(profile, expected, rtol=1e-5)


def _fake() -> demo.Result:
  sizes = demo.Sizes(time=40, hidden=4, batch=2)
  profiles = {"rnn (tanh)": np.linspace(0.0, 1.0, 40), "gru": np.full(40, 0.5)}
  return demo.Result(sizes, profiles, {"rnn (tanh)": 0.25, "gru": 1.5})


def test_writing_reads_the_profiles_at_distances_up_to_t():
  result = _fake()
  rnn = result.profiles["rnn (tanh)"]
  md = demo.to_markdown(result)
  assert md.splitlines()[0] == "| cell | d = 1 | d = 10 | d = 30 |"
  assert f"| rnn (tanh) | {rnn[39]:.3g} | {rnn[30]:.3g} | {rnn[10]:.3g} |" in md
  text = demo.format_table(result)
  row = next(line for line in text.splitlines() if line.startswith("gru"))
  assert row.split() == ["gru", "5.00e-01", "5.00e-01", "5.00e-01", "1.50s"]
  doc = json.loads(json.dumps(demo.to_json(result), allow_nan=False))
  assert doc["sizes"]["time"] == 40 and len(doc["profiles"]["gru"]) == 40


def test_bad_sizes():
  with pytest.raises(ValueError, match="time must be an int >= 3"):
    demo.run(demo.QUICK._replace(time=2), key=jax.random.key(0))
  with pytest.raises(TypeError, match=r"demo\.Sizes"):
    demo.run((30, 8), key=jax.random.key(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_the_memory_estimate_covers_what_xla_allocates(kind):
  sizes = demo.Sizes(time=300, hidden=24)
  cell = {"rnn": gj.rnn, "lstm": gj.lstm}[kind](sizes.hidden)
  params = jax.eval_shape(lambda: cell.init(jax.random.key(0), sizes.input_size))
  xs = jax.ShapeDtypeStruct((sizes.time, sizes.batch, sizes.input_size), jnp.float32)
  fn = jax.jit(lambda p, x: demo.input_gradient_profile(cell, p, x))
  analysis = fn.lower(params, xs).compile().memory_analysis()
  if analysis is None:
    pytest.skip("this backend has no memory analysis")
  used = analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
  assert used <= demo.estimated_bytes(sizes)


def test_the_cells_are_the_classic_ones_with_and_without_chrono():
  cells = demo._cells(demo.Sizes(time=5, hidden=2))
  assert cells == {
    "rnn (tanh)": gj.rnn(2),
    "gru": gj.gru(2),
    "gru, chrono(5)": gj.gru(2, update_bias=gj.chrono(5)),
    "lstm": gj.lstm(2),
    "lstm, chrono(5)": gj.lstm(2, forget_bias=gj.chrono(5)),
  }


class _Cell(NamedTuple):
  """A stand-in whose ``init`` records its key: the loop of ``run``, without initialising."""

  hidden_size: int

  def init(self, key, input_size):
    return (key, input_size)


def test_run_profiles_every_cell_on_one_batch(monkeypatch):
  """The loop of ``run`` (the profile itself is checked above, against a loop over steps)."""
  cells = {"a": _Cell(1), "b": _Cell(2)}
  seen = []

  def profile(cell, params, xs):
    seen.append((cell, params, xs))
    return jnp.arange(xs.shape[0], dtype=xs.dtype)

  monkeypatch.setattr(demo, "_cells", lambda sizes: cells)
  monkeypatch.setattr(demo, "input_gradient_profile", profile)
  sizes = demo.Sizes(time=5, hidden=2, batch=3, input_size=4)
  said = []
  result = demo.run(sizes, key=jax.random.key(0), progress=said.append)
  assert list(result.profiles) == ["a", "b"] and said == ["demo: a", "demo: b"]
  assert [cell for cell, _, _ in seen] == list(cells.values())
  _, k_params = jax.random.split(jax.random.key(0))
  for _, (key, input_size), xs in seen:  # one batch, one parameter key, for every cell
    assert xs.shape == (5, 3, 4) and xs is seen[0][2] and input_size == 4
    assert (jax.random.key_data(key) == jax.random.key_data(k_params)).all()
  np.testing.assert_array_equal(result.profiles["b"], np.arange(5))
  assert set(result.seconds) == set(result.profiles)
