"""Learning changes the horizon: the probe against the training loss, and the writing on a
canned QUICK result (its one QUICK run is the report's, checked in tests/test_report.py)."""

import json
import math

import jax
import jax.numpy as jnp
import pytest

import canned
from gatejax import train
from gatejax.experiments import _common, horizon

SIZES = horizon.QUICK


@pytest.fixture(scope="module")
def result():
  return canned.load("horizon")


def test_probe_model_measures_the_training_loss():
  """probe_model's loss is train.loss_fn's; its contributions add up to at least the gradient."""
  cell, task = _common.cell("lstm", SIZES.hidden), _common.task("adding", SIZES.time)
  params = train.init_model(cell, task, jax.random.key(1))
  batch = task.sample(jax.random.key(2), SIZES.probe_batch)  # the compiled probe's shape
  probe = horizon.probe_model(cell, task, params, batch)
  assert float(probe["loss"]) == pytest.approx(float(train.loss_fn(cell, task, params, batch)))
  grad = jax.grad(lambda p: train.loss_fn(cell, task, params._replace(cell=p), batch))(params.cell)
  norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad))))
  total = float(jnp.sum(probe["contributions"]))
  assert norm <= total * (1 + 1e-5)  # ‖Σ_t g_t‖ ≤ Σ_t ‖g_t‖


def test_run_rejects_bad_sizes():
  with pytest.raises(TypeError, match=r"horizon\.Sizes"):
    horizon.run((20, 8), key=jax.random.key(0))  # type: ignore[arg-type]
  with pytest.raises(ValueError, match="kinds must be drawn from"):
    horizon.run(SIZES._replace(kinds=("mgu",)), key=jax.random.key(0))


def test_the_canned_result_is_a_quick_run(result):
  assert result.sizes == horizon.QUICK and list(result.runs) == ["RNN", "GRU", "LSTM"]


def test_markdown_and_json(result):
  md = horizon.to_markdown(result, {"learning": "l.png", "contributions": "c.png"})
  assert horizon.table(result) in md
  assert all(f"- {s}" in md for s in horizon.findings(result))
  assert md.endswith(
    "![training curves](l.png)\n\n![contribution norms before and after training](c.png)"
  )
  doc = json.loads(json.dumps(horizon.to_json(result), allow_nan=False))
  assert doc["findings"] == horizon.findings(result)
  assert doc["sizes"]["kinds"] == ["rnn", "gru", "lstm"]
  assert doc["runs"]["LSTM"]["horizon_after"] == result.runs["LSTM"].horizon_after


def test_findings_follow_the_numbers(result):
  baseline = result.baseline
  lstm = result.runs["LSTM"]
  fake = result._replace(
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
  # Learned is below a tenth of the baseline (the experiments' one rule).
  assert horizon.learned(lstm._replace(final_eval=0.09 * baseline), baseline)
  assert not horizon.learned(lstm._replace(final_eval=0.11 * baseline), baseline)


def test_non_finite_numbers_are_written_alike(result):
  run = result.runs["LSTM"]
  diverged = result._replace(runs={"LSTM": run._replace(final_eval=math.nan)})
  assert horizon.to_json(diverged)["runs"]["LSTM"]["final_eval"] == "nan"
  assert "| LSTM | nan |" in horizon.table(diverged)
  assert "LSTM on the adding problem with T = 20 diverged" in " ".join(horizon.findings(diverged))
  history = train.History(loss=[math.inf, math.nan])
  assert history.to_dict()["loss"] == ["inf", "nan"]
  assert train.History.from_dict(history.to_dict()).loss[0] == math.inf


def test_figures(result):
  import matplotlib.pyplot as plt

  figs = horizon.figures(result)
  assert list(figs) == ["learning", "contributions"]
  for fig in figs.values():
    plt.close(fig)
