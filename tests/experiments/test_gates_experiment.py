"""The gate experiment: its parts against references, and its writing on a canned QUICK result.

Its one QUICK run is the report's (tests/test_report.py checks that run's structure and the
science: exact zeros only with ReLU gates, only ReLU gates above 1).
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import canned
import gatejax as gj
from gatejax import analysis
from gatejax.experiments import gates

SIZES = gates.QUICK


@pytest.fixture(scope="module")
def result():
  return canned.load("gates")


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


def test_activity_fractions_match_analysis_gate_statistics():
  """Independent reference: gatejax.analysis.gate_statistics on each seed."""
  n, shape = SIZES.seeds, (SIZES.seeds, SIZES.time, SIZES.batch, 2)
  cell = gates.gate_cell("gru", "relu", SIZES.hidden)
  params = gates._measure._init(cell, jax.random.key(3), n)
  # Small inputs keep the ReLU GRU finite: gate_statistics counts over every value, the
  # experiment over the finite ones, and the two agree only without overflow.
  xs = 0.2 * jax.random.uniform(jax.random.key(4), shape)
  act = gates._measure._activity(cell, params, xs)
  assert act.non_finite == 0
  per_seed = [
    analysis.gate_statistics(cell, jax.tree.map(lambda p, s=s: p[s], params), xs[s])
    for s in range(n)
  ]
  for g in ("r", "z"):
    expected = np.mean([float(st.dead[g]) for st in per_seed])
    assert act.gates[g].dead == pytest.approx(expected, abs=1e-6)
    expected = np.mean([float(st.dead_units[g]) for st in per_seed])
    assert act.gates[g].dead_units == pytest.approx(expected, abs=1e-6)
  _, ys = gj.scan(cell, jax.tree.map(lambda p: p[0], params), xs[0])
  rms = jnp.mean(jnp.sqrt(jnp.mean(ys**2, axis=-1)), axis=-1)
  np.testing.assert_allclose(act.hidden_rms[0], rms, rtol=1e-5)


def test_jacobian_summary_closed_form():
  """With every parameter zero a GRU's carry Jacobian is 0.5^(T-k): the factor is 0.5."""
  n, T = SIZES.seeds, SIZES.time
  cell = gates.gate_cell("gru", "sigmoid", SIZES.hidden)
  zeros = jax.tree.map(jnp.zeros_like, gates._measure._init(cell, jax.random.key(0), n))
  jac = gates._measure._jacobian(cell, zeros, jnp.ones((n, T, SIZES.jacobian_batch, 2)))
  np.testing.assert_allclose(jac.norms, np.broadcast_to(0.5 ** np.arange(T, 0, -1), (n, T)))
  np.testing.assert_allclose(jac.rate, 0.5, rtol=1e-4)
  assert jac.amplified == 0 and jac.non_finite == 0


def test_gate_cell_swaps_only_the_gate_function():
  assert gates.gate_cell("lstm", "relu", 4) == gj.lstm(4, gate_fn=jax.nn.relu)
  assert gates.gate_cell("gru", "sigmoid", 4) == gj.gru(4)
  with pytest.raises(ValueError, match="gate must be one of"):
    gates.gate_cell("gru", "tanh", 4)


def test_run_rejects_unknown_names():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="gates must be drawn from"):
    gates.run(SIZES._replace(gates=("tanh",)), key=key)
  with pytest.raises(ValueError, match="probes must be drawn from"):
    gates.run(SIZES._replace(probes=("uniform",)), key=key)
  with pytest.raises(TypeError, match=r"gates\.Sizes"):
    gates.run((1, 2), key=key)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Reading and writing, on the canned QUICK result
# ---------------------------------------------------------------------------


def test_the_canned_result_is_a_quick_run(result):
  assert result.sizes == gates.QUICK
  assert set(result.training) == set(gates.QUICK.trained)


def test_tables_markdown_and_json(result):
  links = {"hidden_adding": "h.png", "heatmap_gru_relu": "gr.png", "training": "t.png"}
  md = gates.to_markdown(result, links)
  for probe in result.activity:
    assert gates.activity_table(result, probe) in md
    assert gates.jacobian_table(result, probe) in md
  assert gates.training_table(result) in md and gates.trained_activity_table(result) in md
  assert "![hidden-state size, adding inputs](h.png)" in md and "![gru_relu](gr.png)" in md
  assert "![training curves per gate function](t.png)" in md
  assert "### Findings" in md and all(f"- {s}" in md for s in gates.findings(result))
  # The table prints what the result holds: the ReLU GRU's dead fraction, as a percentage.
  dead = result.activity["adding"]["GRU relu"].gates["z"].dead
  assert "| GRU relu | z | " in md and f"{100 * dead:.1f}%" in md
  document = json.loads(json.dumps(gates.to_json(result), allow_nan=False))
  assert document["findings"] == gates.findings(result)
  assert document["sizes"]["trained"] == list(gates.QUICK.trained)


def test_findings_follow_the_numbers(result):
  text = " ".join(gates.findings(result))
  assert "one-sided suppression the seed describes" in text
  acts = dict(result.activity["adding"])
  relu = acts["GRU relu"]
  acts["GRU relu"] = relu._replace(
    gates={g: f._replace(dead=0.0) for g, f in relu.gates.items()}, non_finite=0.0
  )
  changed = result._replace(activity={"adding": acts}, jacobian={}, training={})
  text = " ".join(gates.findings(changed))
  assert "GRU at initialisation, the adding problem's inputs: some ReLU gate was never" in text


def test_training_findings_use_the_one_learned(result):
  """Learned = a median final loss below a tenth of the baseline (the experiments' one rule)."""
  b = result.baseline
  sig, relu = result.training["LSTM sigmoid"], result.training["LSTM relu"]

  def with_finals(sig_final, relu_final):
    training = {
      "LSTM sigmoid": sig._replace(final=np.full(2, sig_final), diverged=np.zeros(2, bool)),
      "LSTM relu": relu._replace(final=np.full(2, relu_final), diverged=np.zeros(2, bool)),
    }
    return " ".join(gates.findings(result._replace(training=training)))

  assert "Sigmoid gates learned the task and ReLU gates did not" in with_finals(0.05 * b, 0.3 * b)
  # A third of the baseline once counted as learned (below a half); it does not now.
  assert "Neither learned the task" in with_finals(0.3 * b, 0.4 * b)
  assert "Both learned, ReLU gates to a worse final loss" in with_finals(0.02 * b, 0.08 * b)


def test_every_writer_writes_non_finite_numbers_alike(result):
  """One rule (gatejax._format): NaN and infinity become "nan" and "inf", read back by float."""
  name = next(iter(result.training))
  overflowed = result._replace(
    training={name: result.training[name]._replace(final=np.array([math.inf, 0.5]))}
  )
  assert gates.to_json(overflowed)["training"][name]["final"] == ["inf", 0.5]


def test_figures(result):
  import matplotlib.pyplot as plt

  figs = gates.figures(result)
  expected = {f"{part}_{p}" for part in ("hidden", "histograms", "jacobian") for p in gates.PROBES}
  expected |= {f"heatmap_{k}_{g}" for k in gates.KINDS for g in ("sigmoid", "relu")}
  assert set(figs) == expected | {"training"}
  for fig in figs.values():
    plt.close(fig)
