"""The dynamics experiment: one run (structure and the science), and its writing on a canned
QUICK result (the findings chosen by numbers, tables, JSON, figures).

The run's sizes are tiny: one nonlinear cell given as already trained (the report's path,
models reused from the horizon experiment), one linear cell trained here, a two-gain sweep.
"""

import json
import math

import jax
import numpy as np
import pytest

import canned
import gatejax as gj
from gatejax import plots, tasks, train
from gatejax.experiments import _common, dynamics

SIZES = dynamics.QUICK._replace(
  cells=("rnn", "min_gru"),
  hidden=4,
  train_time=12,
  train_batch=4,
  train_steps=3,
  probe_batch=2,
  times=(12, 40),
  max_iter=40,
  quasi_max_time=40,
  longest_cells=("rnn", "min_gru"),
)
KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def given():
  """A "trained" RNN handed in, as the report hands in the horizon experiment's models."""
  cell = _common.cell("rnn", SIZES.hidden)
  params = dynamics._measure._initial_params(cell, tasks.adding(SIZES.train_time), KEY)
  params = params._replace(cell=params.cell._replace(w_h=0.5 * params.cell.w_h))
  return dynamics.Trained(params=params, final_eval=0.125)


@pytest.fixture(scope="module")
def measured(given):
  """The room's one run."""
  return dynamics.run(SIZES, key=KEY, trained={"rnn": given})


@pytest.fixture(scope="module")
def result():
  return canned.load("dynamics")


def test_sizes_are_the_door():
  assert isinstance(dynamics.FULL, dynamics.Sizes) and isinstance(dynamics.QUICK, dynamics.Sizes)
  assert set(dynamics.FULL.cells) == set(dynamics.KINDS) == set(_common.CELLS)
  assert min(dynamics.FULL.gains) <= 0.5 and max(dynamics.FULL.gains) >= 3.0
  assert dynamics.FULL.times == (100, 1000, 10_000)
  with pytest.raises(TypeError, match=r"dynamics\.Sizes"):
    dynamics.run(dynamics.FULL._asdict(), key=KEY)  # type: ignore[arg-type]
  with pytest.raises(ValueError, match="among"):
    dynamics.run(SIZES._replace(cells=("janet",)), key=KEY)


def test_length_groups_pad_only_where_cheap():
  assert dynamics.length_groups((100, 1000, 10_000)) == ((100, 1000), (10_000,))
  assert dynamics.length_groups((10_000, 20, 100)) == ((20, 100), (10_000,))
  assert dynamics.length_groups((50,)) == ((50,),)
  for group in dynamics.length_groups((3, 7, 40, 41, 500, 9000)):
    assert len(group) * max(group) <= 2 * sum(group) or len(group) == 1


def test_training_sizes_are_the_horizon_rooms():
  """So that the report trains RNN, GRU and LSTM once, for both rooms."""
  from gatejax.experiments import horizon

  for d, h in ((dynamics.FULL, horizon.FULL), (dynamics.QUICK, horizon.QUICK)):
    assert (d.hidden, d.train_time, d.train_batch, d.train_steps) == (
      h.hidden,
      h.time,
      h.batch,
      h.steps,
    )
    assert (d.learning_rate, d.clip_norm, d.probe_batch) == (
      h.learning_rate,
      h.clip_norm,
      h.probe_batch,
    )


def test_initial_params_are_where_fit_starts():
  cell = _common.cell("rnn", SIZES.hidden)
  task = tasks.adding(SIZES.train_time)
  ours = dynamics._measure._initial_params(cell, task, KEY)
  fits = train.fit(cell, task, key=KEY, steps=0, progress=False).params
  assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), ours, fits))


@pytest.mark.slow
def test_result_structure(measured, given):
  result = measured
  assert list(result.cells) == list(SIZES.cells)
  rnn, min_gru = result.cells["rnn"], result.cells["min_gru"]
  assert (rnn.trained_by, rnn.final_eval) == ("horizon", given.final_eval)
  assert min_gru.trained_by == "dynamics" and math.isfinite(min_gru.final_eval)
  assert not rnn.linear and min_gru.linear
  for run in result.cells.values():
    for m in (run.init, run.trained):
      assert m.lyapunov.shape == (SIZES.probe_batch,) and np.isfinite(m.lyapunov).all()
      assert m.contributions.shape == (SIZES.train_time,)
      assert 1 <= m.horizon <= SIZES.train_time
      assert m.decay_rate > 0 and math.isfinite(m.log_rho)
      assert set(m.newton) == set(dynamics.METHODS)
      for sw in m.newton.values():
        assert sw.times == SIZES.times and sw.max_iter == SIZES.max_iter
        assert sw.iterations.shape == sw.converged.shape == (2, SIZES.newton_batch)
        assert ((sw.iterations >= 1) & (sw.iterations <= SIZES.max_iter)).all()
  assert [p.gain for p in result.sweep] == list(SIZES.gains)
  for p in result.sweep:
    assert p.lyapunov.shape == (SIZES.sweep_batch,) and np.isfinite(p.lyapunov).all()
    assert p.newton.times == SIZES.times


@pytest.mark.slow
def test_linear_cell_is_one_sweep_and_padding_changes_no_count(measured):
  result = measured
  for m in (result.cells["min_gru"].init, result.cells["min_gru"].trained):
    for sw in m.newton.values():
      assert (sw.iterations == 1).all() and sw.converged.all()
  # The T = 12 runs were padded to 40 inside one solve; alone they take the same sweeps.
  cell = _common.cell("rnn", SIZES.hidden)
  params = dynamics._measure._initial_params(cell, tasks.adding(SIZES.train_time), KEY).cell
  k_newton = jax.random.fold_in(KEY, 11)
  xs = tasks.adding(12).sample(jax.random.fold_in(k_newton, 12), SIZES.newton_batch).xs
  _, _, info = gj.parallel_scan(cell, params, xs, method="deer", max_iter=SIZES.max_iter)
  np.testing.assert_array_equal(
    result.cells["rnn"].init.newton["deer"].iterations[0], info.iterations
  )


@pytest.mark.slow
def test_the_science_at_tiny_sizes(measured):
  """Below the edge of chaos λ_max < 0 and DEER converges; above it λ_max > 0; and the
  gradient's decay per step is the Lyapunov exponent (log ρ ≈ λ_max) where it contracts."""
  result = measured
  low, high = result.sweep[0], result.sweep[-1]
  assert low.lam < 0 < high.lam
  assert low.newton.converged.all()
  assert dynamics.crossing(result) is not None and 0.5 < dynamics.crossing(result) < 3.0
  assert abs(low.log_rho - low.lam) < 0.05
  assert dynamics.agreement(result)["median_abs_difference"] < 0.1


def test_the_canned_result_is_a_quick_run_of_the_report(result):
  assert result.sizes == dynamics.QUICK
  # In the report the LSTM is the horizon room's model; minGRU trains here.
  assert [r.trained_by for r in result.cells.values()] == ["horizon", "dynamics"]


def test_json_round_trips(result):
  doc = dynamics.to_json(result)
  text = json.dumps(doc, allow_nan=False)
  assert json.loads(text) == json.loads(json.dumps(json.loads(text)))
  back = json.loads(text)
  assert back["sizes"]["times"] == list(dynamics.QUICK.times)
  assert back["cells"]["lstm"]["trained_by"] == "horizon"
  deer = back["cells"]["min_gru"]["init"]["newton"]["deer"]
  assert deer["outcome"] == ["converged", "converged"] and deer["iterations"] == [[1], [1]]
  assert back["findings"] == dynamics.findings(result)
  assert back["sweep"][0]["lyapunov_mean"] == pytest.approx(result.sweep[0].lam)


def test_markdown_holds_the_tables_and_findings(result):
  links = {"edge_of_chaos": "e.png", "sweeps_against_length": "s.png"}
  md = dynamics.to_markdown(result, links)
  assert "(LSTM: the models of section 3)" in md
  assert "| LSTM | init |" in md and "| minGRU | trained |" in md
  assert "| 0.5 |" in md and "| 3 |" in md
  for line in dynamics.findings(result):
    assert line in md
  assert "minGRU is linear in the carry: gj.parallel_scan solved every run in exactly 1 sweep" in md
  assert md.endswith(
    "![λ_max and DEER sweeps against the gain](e.png)\n\n"
    "![Newton sweeps against the sequence length](s.png)"
  )


def _fake(result, lam_init, lam_trained, gains_lam, deer_outcome="converged"):
  """The result with its exponents (and the LSTM's DEER runs) replaced, the LSTM alone."""
  run = result.cells["lstm"]
  sw = run.init.newton["deer"]
  if deer_outcome == "cap":
    sw = sw._replace(
      iterations=np.full_like(sw.iterations, sw.max_iter), converged=np.zeros_like(sw.converged)
    )
  init = run.init._replace(lyapunov=np.full(2, lam_init), newton={**run.init.newton, "deer": sw})
  trained = run.trained._replace(lyapunov=np.full(2, lam_trained))
  sweep = tuple(
    p._replace(lyapunov=np.full(2, lam)) for p, lam in zip(result.sweep, gains_lam, strict=True)
  )
  return result._replace(cells={"lstm": run._replace(init=init, trained=trained)}, sweep=sweep)


def test_findings_are_chosen_by_the_numbers(result):
  chaotic = " ".join(dynamics.findings(_fake(result, 0.2, -0.3, (-0.5, -0.1))))
  assert "not contracting (λ_max ≥ 0) for LSTM" in chaotic
  assert "Training moved λ_max away from 0, a shorter memory, for LSTM (+0.200 → -0.300)" in chaotic
  assert "towards 0" not in chaotic
  assert "negative at every gain" in chaotic and "crosses 0" not in chaotic
  calm = " ".join(dynamics.findings(_fake(result, -0.4, -0.1, (-0.5, 0.3))))
  assert "Every cell is contracting at initialisation" in calm
  assert "Training moved λ_max towards 0, a longer memory, for LSTM (-0.400 → -0.100)" in calm
  g_c = 0.5 + 2.5 * 0.5 / 0.8
  assert f"crosses 0 at g ≈ {g_c:.2f}" in calm
  capped = dynamics.findings(_fake(result, -0.01, -0.1, (-0.5, 0.3), deer_outcome="cap"))
  assert any(
    "DEER sweeps." in s and "Not converging at some length for LSTM init" in s for s in capped
  )
  capped_sweeps = _fake(result, 0, 0, (0, 0), "cap").cells["lstm"].init.newton["deer"]
  assert dynamics.sweeps_text(capped_sweeps, 20) == "✗ 50"
  assert dynamics.sweeps_text(capped_sweeps, 7) == "—"


def test_figures(result):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  curves = [p.newton.curve() for p in result.sweep]
  fig = plots.lyapunov_sweep(
    [p.gain for p in result.sweep],
    [p.lam for p in result.sweep],
    {"T = 12": [c[1][0] for c in curves]},
    converged={"T = 12": [False, True]},
    crossing=dynamics.crossing(result),
    max_iter=40,
    failed_at=40,
  )
  top, bottom = fig.axes
  assert bottom.get_yscale() == "log" and top.get_ylabel().startswith("$\\lambda")
  (line,) = [line for line in bottom.lines if line.get_label() == "T = 12"]
  assert line.get_ydata()[0] == 40  # not converged: drawn at the cap
  assert "not converged (drawn at the cap)" in [
    t.get_text() for t in bottom.get_legend().get_texts()
  ]
  plt.close(fig)
  panels = {
    "DEER": {
      r.name: {s: getattr(r, s).newton["deer"].curve() for s in ("init", "trained")}
      for r in result.cells.values()
    }
  }
  fig = plots.sweeps_against_length(panels, max_iter=40)
  (ax,) = fig.axes
  assert ax.get_xscale() == "log" and len(ax.lines) >= 4
  assert [line.get_linestyle() for line in ax.lines[:2]] == ["--", "-"]
  plt.close(fig)
  with pytest.raises(ValueError, match="same shape"):
    plots.lyapunov_sweep([1.0, 2.0], [0.1], {})
  with pytest.raises(ValueError, match="must not be empty"):
    plots.sweeps_against_length({})


def test_the_experiment_draws_its_two_figures(result):
  import matplotlib.pyplot as plt

  figs = dynamics.figures(result)
  assert set(figs) == {"edge_of_chaos", "sweeps_against_length"}
  assert len(figs["edge_of_chaos"].axes) == 2
  assert [ax.get_title() for ax in figs["sweeps_against_length"].axes] == ["DEER", "quasi-DEER"]
  for fig in figs.values():
    plt.close(fig)
