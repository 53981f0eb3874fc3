"""The gate experiment and the horizon experiment: structure, references and the science.

Sizes are the experiments' QUICK sizes (the ones ``gatejax report --quick`` uses), so a
report test in the same process reuses these compilations.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gatejax as gj
from gatejax import analysis, tasks, train
from gatejax.experiments import gates, horizon

SIZES = gates.QUICK_SIZES
# One training configuration, the one the horizon experiment's LSTM shares: every
# compilation here is made once.
TRAINED = ("LSTM sigmoid",)
PROBES = ("adding",)


@pytest.fixture(scope="module")
def gate_result():
  return gates.run_gates(SIZES, probes=PROBES, train=TRAINED)


@pytest.fixture(scope="module")
def horizon_result():
  return horizon.run_horizon(horizon.QUICK_SIZES, kinds=("lstm",))


# ---------------------------------------------------------------------------
# The gate experiment
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_gate_result_structure(gate_result):
  labels = [gates.label(k, g) for k in gates.KINDS for g in gates.GATE_FUNCTIONS]
  assert set(gate_result.activity) == set(PROBES) == set(gate_result.jacobian)
  for probe in PROBES:
    assert list(gate_result.activity[probe]) == labels
    for name, act in gate_result.activity[probe].items():
      assert act.hidden_rms.shape == (SIZES.seeds, SIZES.time)
      kind = name.split()[0].lower()
      assert set(act.gates) == {"gru": {"r", "z"}, "lstm": {"i", "f", "o"}}[kind]
      assert (act.cell_rms is None) == (kind == "gru")
      for f in act.gates.values():
        if math.isfinite(f.dead):
          assert 0 <= f.dead <= f.shut <= 1 and 0 <= f.dead_units <= 1
    for jac in gate_result.jacobian[probe].values():
      assert jac.norms.shape == (SIZES.seeds, SIZES.time)
      assert jac.example.shape == (SIZES.time, SIZES.jacobian_batch)
      assert jac.rate.shape == (SIZES.seeds,)
  assert list(gate_result.training) == list(TRAINED)
  for tr in gate_result.training.values():
    assert tr.losses.shape == (SIZES.seeds, SIZES.train_steps)
    assert tr.diverged.dtype == bool
    # A final loss is reported exactly for the runs that did not diverge.
    np.testing.assert_array_equal(np.isnan(tr.final), tr.diverged)
  assert gate_result.baseline == pytest.approx(1 / 6)


@pytest.mark.slow
def test_sigmoid_gates_are_never_dead_relu_gates_are(gate_result):
  """The seed's one-sided suppression, measured: exact zeros only with ReLU gates."""
  for probe in PROBES:
    acts = gate_result.activity[probe]
    for kind in gates.KINDS:
      sig, relu = acts[gates.label(kind, "sigmoid")], acts[gates.label(kind, "relu")]
      assert all(f.dead == 0 for f in sig.gates.values())
      assert all(f.dead > 0 for f in relu.gates.values())


@pytest.mark.slow
def test_only_relu_gates_exceed_one(gate_result):
  for probe in PROBES:
    acts = gate_result.activity[probe]
    for name, act in acts.items():
      if not name.endswith("relu"):
        assert all(f.above_one == 0 for f in act.gates.values()), name
    # The LSTM's forget bias of 1 puts a ReLU forget gate at relu(1 + noise): above 1 about
    # half the time, where a sigmoid gives 0.73.
    assert acts["LSTM relu"].gates["f"].above_one > 0.2
    assert acts["LSTM sigmoid"].gates["f"].mean == pytest.approx(1 / (1 + math.exp(-1)), abs=0.1)


def test_activity_fractions_match_analysis_gate_statistics():
  """Independent reference: gatejax.analysis.gate_statistics on each seed."""
  # The fixture's shapes, so the experiment's compiled scan is reused.
  n, shape = SIZES.seeds, (SIZES.seeds, SIZES.time, SIZES.batch, 2)
  cell = gates.gate_cell("gru", "relu", SIZES.hidden)
  params = gates._init(cell, jax.random.key(3), n)
  # Small inputs keep the ReLU GRU finite: gate_statistics counts over every value, the
  # experiment over the finite ones, and the two agree only without overflow.
  xs = 0.2 * jax.random.uniform(jax.random.key(4), shape)
  act = gates._activity(cell, params, xs)
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
  # RMS of h per step, averaged over the batch, from a plain scan.
  _, ys = gj.scan(cell, jax.tree.map(lambda p: p[0], params), xs[0])
  rms = jnp.mean(jnp.sqrt(jnp.mean(ys**2, axis=-1)), axis=-1)
  np.testing.assert_allclose(act.hidden_rms[0], rms, rtol=1e-5)


def test_jacobian_summary_closed_form():
  """With every parameter zero a GRU's carry Jacobian is 0.5^(T-k): the factor is 0.5."""
  n, T = SIZES.seeds, SIZES.time
  cell = gates.gate_cell("gru", "sigmoid", SIZES.hidden)
  zeros = jax.tree.map(jnp.zeros_like, gates._init(cell, jax.random.key(0), n))
  jac = gates._jacobian(cell, zeros, jnp.ones((n, T, SIZES.jacobian_batch, 2)))
  np.testing.assert_allclose(jac.norms, np.broadcast_to(0.5 ** np.arange(T, 0, -1), (n, T)))
  np.testing.assert_allclose(jac.rate, 0.5, rtol=1e-4)
  assert jac.amplified == 0 and jac.non_finite == 0


@pytest.mark.slow
def test_gate_tables_json_and_findings(gate_result):
  md = gates.to_markdown(gate_result)
  for name in gate_result.activity["adding"]:
    assert f"| {name} |" in md
  assert "#### Findings" in md
  document = gates.to_json(gate_result)
  json.dumps(document, allow_nan=False)  # strict JSON: non-finite values became strings
  assert document["findings"] == gates.findings(gate_result)


@pytest.mark.slow
def test_findings_follow_the_numbers(gate_result):
  """Change a measured number and the sentence about it changes."""
  text = " ".join(gates.findings(gate_result))
  assert "one-sided suppression the seed describes" in text
  acts = dict(gate_result.activity["adding"])
  relu = acts["GRU relu"]
  acts["GRU relu"] = relu._replace(
    gates={g: f._replace(dead=0.0) for g, f in relu.gates.items()}, non_finite=0.0
  )
  changed = gate_result._replace(activity={"adding": acts}, jacobian={}, training={})
  text = " ".join(gates.findings(changed))
  assert "GRU at initialisation, the adding problem's inputs: some ReLU gate was never" in text


def test_run_gates_rejects_unknown_names():
  with pytest.raises(ValueError, match="gates"):
    gates.run_gates(SIZES, gates=("tanh",), train=False)
  with pytest.raises(ValueError, match="probes"):
    gates.run_gates(SIZES, probes=("uniform",), train=False)
  with pytest.raises(TypeError, match="sizes"):
    gates.run_gates((1, 2), train=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Learning changes the horizon
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_horizon_result_structure(horizon_result):
  T = horizon.QUICK_SIZES.time
  assert list(horizon_result.runs) == ["LSTM"]
  for run in horizon_result.runs.values():
    for curve in (run.before, run.after, run.jacobian_before, run.jacobian_after):
      assert curve.shape == (T,)
    assert 1 <= run.horizon_before <= T and 1 <= run.horizon_after <= T
    assert 0 <= run.far_before <= 1 and 0 <= run.far_after <= 1
    assert len(run.history.loss) == horizon.QUICK_SIZES.steps
    # The summaries are the analysis module's, of the stored curve.
    assert run.horizon_after == int(analysis.gradient_horizon(jnp.asarray(run.after)))
  json.dumps(horizon.to_json(horizon_result), allow_nan=False)
  assert "| LSTM |" in horizon.horizon_table(horizon_result)


@pytest.mark.slow
def test_every_writer_writes_non_finite_numbers_alike(gate_result, horizon_result):
  """One rule (gatejax._format): NaN and infinity become "nan" and "inf", read back by float."""
  run = horizon_result.runs["LSTM"]
  diverged = horizon_result._replace(runs={"LSTM": run._replace(final_eval=math.nan)})
  assert horizon.to_json(diverged)["runs"]["LSTM"]["final_eval"] == "nan"
  assert "| LSTM | nan |" in horizon.horizon_table(diverged)
  name = next(iter(gate_result.training))
  overflowed = gate_result._replace(
    training={name: gate_result.training[name]._replace(final=np.array([math.inf, 0.5]))}
  )
  assert gates.to_json(overflowed)["training"][name]["final"] == ["inf", 0.5]
  history = train.History(loss=[math.inf, math.nan])
  assert history.to_dict()["loss"] == ["inf", "nan"]
  assert train.History.from_dict(history.to_dict()).loss[0] == math.inf


def test_probe_model_measures_the_training_loss():
  """probe_model's loss is train.loss_fn's; its contributions add up to at least the gradient."""
  sizes = horizon.QUICK_SIZES
  cell, task = horizon.horizon_cell("lstm", sizes.hidden), tasks.adding(sizes.time)
  params = train.init_model(cell, task, jax.random.key(1))
  batch = task.sample(jax.random.key(2), sizes.probe_batch)  # the compiled probe's shape
  probe = horizon.probe_model(cell, task, params, batch)
  assert float(probe["loss"]) == pytest.approx(float(train.loss_fn(cell, task, params, batch)))
  grad = jax.grad(lambda p: train.loss_fn(cell, task, params._replace(cell=p), batch))(params.cell)
  norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad))))
  total = float(jnp.sum(probe["contributions"]))
  assert norm <= total * (1 + 1e-5)  # ‖Σ_t g_t‖ ≤ Σ_t ‖g_t‖


@pytest.mark.slow
def test_horizon_findings_follow_the_numbers(horizon_result):
  baseline = horizon_result.baseline
  lstm = horizon_result.runs["LSTM"]
  fake = horizon_result._replace(
    runs={
      "RNN": lstm._replace(final_eval=baseline, horizon_before=9, horizon_after=5),
      "LSTM": lstm._replace(
        final_eval=0.01 * baseline,
        horizon_before=5,
        horizon_after=20,
        far_before=0.0,
        far_after=0.4,
      ),
    }
  )
  text = " ".join(horizon.findings(fake))
  assert "RNN on the adding problem with T = 20 did not learn it" in text
  assert "LSTM on the adding problem with T = 20 learned the task" in text
  assert "grew from 5 to 20 steps" in text and "shrank from 9 to 5" in text
  assert "learning changed the horizon" in text
