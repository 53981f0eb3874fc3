"""The dynamics experiment: its sizes and parts, and its writing on a canned QUICK result (the
findings chosen by numbers, tables, JSON, figures).

Its one QUICK run is the report's, which hands in the horizon room's LSTM as trained and
trains minGRU itself: tests/test_report.py checks that run's structure, the one sweep of a
linear cell, that padding changes no sweep count, and the science (λ_max crosses 0 between
the gains, log ρ ≈ λ_max).
"""

import json

import jax
import numpy as np
import pytest

import canned
from gatejax import plots, tasks, train
from gatejax.experiments import _common, dynamics

SIZES = dynamics.QUICK._replace(hidden=4, train_time=12)
KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def result():
  return canned.load("dynamics")


def test_sizes_are_the_door():
  assert isinstance(dynamics.FULL, dynamics.Sizes) and isinstance(dynamics.QUICK, dynamics.Sizes)
  assert set(dynamics.FULL.cells) == set(dynamics.KINDS)
  # Every built-in cell, LRU's complex carry included (as its real and imaginary parts).
  assert set(_common.CELLS) == set(dynamics.KINDS)
  assert set(dynamics.FULL.train_cells) == set(dynamics.TRAINED_KINDS) < set(dynamics.KINDS)
  assert {"slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net"} <= set(dynamics.KINDS) - set(
    dynamics.TRAINED_KINDS
  )
  assert min(dynamics.FULL.gains) <= 0.5 and max(dynamics.FULL.gains) >= 3.0
  assert dynamics.FULL.times == (100, 1000, 10_000)
  with pytest.raises(TypeError, match=r"dynamics\.Sizes"):
    dynamics.run(dynamics.FULL._asdict(), key=KEY)  # type: ignore[arg-type]
  with pytest.raises(ValueError, match="among"):
    dynamics.run(SIZES._replace(cells=("janet",)), key=KEY)
  with pytest.raises(ValueError, match="among"):
    dynamics.run(SIZES._replace(train_cells=("janet",)), key=KEY)


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


def _untrained(result):
  """The canned result with minGRU measured at initialisation only."""
  run = result.cells["min_gru"]._replace(trained=None, final_eval=float("nan"), trained_by=None)
  sizes = result.sizes._replace(train_cells=("lstm",))
  return result._replace(sizes=sizes, cells={**result.cells, "min_gru": run})


def test_a_cell_measured_at_initialisation_only(result):
  """What the report does with the modern cells: one row, no training sentence, the JSON's
  trained entry null, its figure curve the initial one only."""
  import matplotlib.pyplot as plt

  untrained = _untrained(result)
  assert [s for s, _ in untrained.cells["min_gru"].states()] == ["init"]
  md = dynamics.to_markdown(untrained)
  assert "| minGRU | init |" in md and "| minGRU | trained |" not in md
  assert "| LSTM | trained |" in md
  assert "Each of LSTM (hidden size 8) at initialisation and after 40 steps" in md
  assert "; minGRU at initialisation only (their official initialisations;" in md
  text = " ".join(dynamics.findings(untrained))
  assert "at every state measured." in text and "before and after training" not in text
  after = next(s for s in dynamics.findings(untrained) if "after training" in s)
  assert "LSTM" in after and "minGRU" not in after
  rows = [label for label, _, _ in dynamics.lyapunov_and_decay(untrained)]
  assert "minGRU (init)" in rows and "minGRU (trained)" not in rows
  doc = json.loads(json.dumps(dynamics.to_json(untrained), allow_nan=False))
  assert doc["cells"]["min_gru"]["trained"] is None
  assert doc["cells"]["min_gru"]["trained_by"] is None
  assert doc["cells"]["lstm"]["trained"]["lyapunov_mean"] == pytest.approx(
    result.cells["lstm"].trained.lam
  )
  figs = dynamics.figures(untrained)
  for fig in figs.values():
    plt.close(fig)
  lstm = untrained.cells["lstm"]._replace(trained=None, trained_by=None)
  none = untrained._replace(cells={**untrained.cells, "lstm": lstm})
  assert dynamics.to_markdown(none).startswith("Each cell (hidden size 8) at initialisation, T =")


def test_separation_is_judged_as_printed(result):
  """Two exponents that print alike (-0.0080, -0.0077) do not separate flat from failing."""
  capped = _fake(result, -0.0077, -0.0077, (-0.5, 0.3), deer_outcome="cap")
  run = result.cells["lstm"]
  flat = run._replace(
    name="A", init=run.init._replace(lyapunov=np.full(2, -0.0080)), trained=None, trained_by=None
  )
  both = capped._replace(cells={"a": flat, "lstm": capped.cells["lstm"]._replace(trained=None)})
  deer = next(s for s in dynamics.findings(both) if s.startswith("DEER sweeps."))
  assert "λ_max alone does not separate them" in deer and "λ_max separates" not in deer
  apart = _fake(result, -0.0077, -0.0077, (-0.5, 0.3), deer_outcome="cap")
  flat = flat._replace(init=run.init._replace(lyapunov=np.full(2, -0.02)))
  deer = next(
    s
    for s in dynamics.findings(
      apart._replace(cells={"a": flat, "lstm": apart.cells["lstm"]._replace(trained=None)})
    )
    if s.startswith("DEER sweeps.")
  )
  assert "λ_max separates them: flat wherever λ_max ≤ -0.020" in deer


@pytest.mark.slow
def test_run_measures_an_untrained_cell_at_initialisation():
  sizes = SIZES._replace(
    cells=("min_gru",),
    train_cells=(),
    longest_cells=(),
    times=(12, 30),
    gains=(0.5,),
    sweep_hidden=4,
    sweep_time=12,
  )
  got = dynamics.run(sizes, key=KEY)
  run = got.cells["min_gru"]
  assert run.trained is None and run.trained_by is None and np.isnan(run.final_eval)
  assert run.init.contributions.shape == (sizes.train_time,)
  assert (run.init.newton["deer"].iterations == 1).all()


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
