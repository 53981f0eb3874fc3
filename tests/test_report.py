"""The report: one ``gatejax report --quick`` end to end, and the loop over the rooms on canned
results (sections in order, the verdict chosen by numbers, written whole or not at all).

The end-to-end run is also the one QUICK run of every experiment room (the report runs each
room's ``run`` at its ``QUICK`` sizes): the structure and the science of those runs are
checked here, on the results it keeps, and the rooms' own test files test their writing on
canned results and their parts against references, without running them again.
"""

import functools
import inspect
import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import canned
import gatejax as gj
from gatejax import analysis, cli, report
from gatejax.experiments import _common, dynamics, gates, horizon, state_tracking, vanishing


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  """The slow path's one run: the command as a user types it (in this process), with the
  rooms' results kept."""
  out = tmp_path_factory.mktemp("report")
  kept: dict = {}
  run = report.run_experiments

  def keep(**kwargs):
    kept.update(run(**kwargs))
    return kept

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(report, "run_experiments", keep)
    assert cli.main(["report", "--quick", "--out", str(out)]) == 0
  assert list(kept) == list(report.ROOMS)
  return out, kept


@pytest.fixture(scope="module")
def report_dir(quick):
  return quick[0]


@pytest.fixture(scope="module")
def results():
  return {name: canned.load(name) for name in report.ROOMS}


@pytest.fixture
def canned_rooms(monkeypatch, results):
  """The report on the canned results, without drawing (the end-to-end run draws)."""
  monkeypatch.setattr(report, "run_experiments", lambda **kwargs: results)
  for room in report.ROOMS.values():
    monkeypatch.setattr(room, "figures", lambda result: {})
  return results


@pytest.mark.slow
def test_writes_markdown_json_and_every_linked_figure(report_dir):
  md = (report_dir / "report.md").read_text()
  links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
  assert links, "the report links no figure"
  for link in links:
    assert not link.startswith("/"), f"{link} is not a relative link"
    path = report_dir / link
    assert path.is_file() and path.stat().st_size > 1000, link
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
  document = json.loads((report_dir / "report.json").read_text())
  assert sorted(document["figures"]) == sorted(set(links))
  assert sorted(p.name for p in report_dir.iterdir()) == sorted({*links, *report.FILES})


@pytest.mark.slow
def test_report_sections_and_numbers(report_dir):
  md = (report_dir / "report.md").read_text()
  headings = re.findall(r"^## (.*)$", md, flags=re.M)
  assert headings[:4] == [
    "1. Vanishing gradients at initialisation",
    "2. Why sigmoid, not ReLU: the gate experiment",
    "3. Training on the adding problem: learning changes the horizon",
    "4. The seed's claims against the measurements",
  ]
  document = json.loads((report_dir / "report.json").read_text())
  assert document["quick"] is True and document["seed"] == 0
  assert list(document)[-len(report.SECTIONS) :] == list(report.SECTIONS)
  # The markdown prints what the JSON holds: the ReLU GRU's dead fraction, as a percentage.
  dead = document["gates"]["activity"]["adding"]["GRU relu"]["gates"]["z"]["dead"]
  assert "| GRU relu | z | " in md and f"{100 * dead:.1f}%" in md
  for room in ("gates", "horizon", "dynamics"):
    assert all(finding in md for finding in document[room]["findings"])
  assert document["verdict"] and all(line in md for line in document["verdict"])
  # The dynamics room measured the horizon room's models instead of training them again.
  assert document["dynamics"]["cells"]["lstm"]["trained_by"] == "horizon"


# ---------------------------------------------------------------------------
# The rooms' QUICK runs, as the report ran them
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_vanishing_quick_run_summaries_agree_with_its_curves(quick):
  result = quick[1]["vanishing"]
  assert result.sizes == vanishing.QUICK
  T = result.sizes.time
  labels = ["rnn (tanh)", "lstm, forget_bias=1", f"lstm, chrono({T})", "min_gru"]
  assert [r.label for r in result.runs] == labels
  assert [r.linear for r in result.runs] == [False, False, False, True]
  for run in result.runs:
    assert run.norms.shape == (T,)
    back = run.norms[::-1]
    np.testing.assert_allclose(run.far_share, back[T // 2 :].sum() / back.sum(), rtol=1e-5)
    assert back[run.horizon - 1] >= 0.01 * back.max() > back[run.horizon :].max(initial=0)
    assert run.decay_rate == pytest.approx(float(analysis.decay_rate(jnp.asarray(run.norms))))


@pytest.mark.slow
def test_gates_quick_run_structure_and_the_science(quick):
  result, sizes = quick[1]["gates"], gates.QUICK
  assert result.sizes == sizes
  labels = [gates.label(k, g) for k in gates.KINDS for g in gates.GATE_FUNCTIONS]
  assert set(result.activity) == set(gates.PROBES) == set(result.jacobian)
  for probe, acts in result.activity.items():
    assert list(acts) == labels
    for name, act in acts.items():
      assert act.hidden_rms.shape == (sizes.seeds, sizes.time)
      kind = name.split()[0].lower()
      assert set(act.gates) == {"gru": {"r", "z"}, "lstm": {"i", "f", "o"}}[kind]
      assert (act.cell_rms is None) == (kind == "gru")
      for f in act.gates.values():
        if math.isfinite(f.dead):
          assert 0 <= f.dead <= f.shut <= 1 and 0 <= f.dead_units <= 1
      if not name.endswith("relu"):  # only ReLU gates exceed 1
        assert all(f.above_one == 0 for f in act.gates.values()), (probe, name)
    # The seed's one-sided suppression: exact zeros only with ReLU gates.
    for kind in gates.KINDS:
      sig, relu = acts[gates.label(kind, "sigmoid")], acts[gates.label(kind, "relu")]
      assert all(f.dead == 0 for f in sig.gates.values())
      assert all(f.dead > 0 for f in relu.gates.values())
    # The forget bias of 1 puts a ReLU forget gate at relu(1 + noise), above 1 about half
    # the time, where a sigmoid gives 0.73.
    assert acts["LSTM relu"].gates["f"].above_one > 0.2
    assert acts["LSTM sigmoid"].gates["f"].mean == pytest.approx(1 / (1 + math.exp(-1)), abs=0.1)
  for jacs in result.jacobian.values():
    for jac in jacs.values():
      assert jac.norms.shape == (sizes.seeds, sizes.time)
      assert jac.example.shape == (sizes.time, sizes.jacobian_batch)
      assert jac.rate.shape == (sizes.seeds,)
  assert list(result.training) == list(sizes.trained)
  for tr in result.training.values():
    assert tr.losses.shape == (sizes.seeds, sizes.train_steps) and tr.diverged.dtype == bool
    # A final loss is reported exactly for the runs that did not diverge.
    np.testing.assert_array_equal(np.isnan(tr.final), tr.diverged)
  assert result.baseline == pytest.approx(1 / 6)


@pytest.mark.slow
def test_horizon_quick_run_structure(quick):
  result = quick[1]["horizon"]
  T = horizon.QUICK.time
  assert result.sizes == horizon.QUICK and list(result.runs) == ["RNN", "GRU", "LSTM"]
  for run in result.runs.values():
    for curve in (run.before, run.after, run.jacobian_before, run.jacobian_after):
      assert curve.shape == (T,)
    assert 1 <= run.horizon_before <= T and 1 <= run.horizon_after <= T
    assert 0 <= run.far_before <= 1 and 0 <= run.far_after <= 1
    assert len(run.history.loss) == horizon.QUICK.steps
    assert run.final_eval == run.history.eval_loss[-1]
    # The summaries are the analysis module's, of the stored curve.
    assert run.horizon_after == int(analysis.gradient_horizon(jnp.asarray(run.after)))
    assert run.params is not None


@pytest.mark.slow
def test_dynamics_quick_run_structure(quick):
  result, sizes = quick[1]["dynamics"], dynamics.QUICK
  assert result.sizes == sizes and list(result.cells) == list(sizes.cells)
  lstm, min_gru = result.cells["lstm"], result.cells["min_gru"]
  # The LSTM is the horizon room's model, handed in; minGRU trained here.
  assert (lstm.trained_by, lstm.final_eval) == (
    "horizon",
    quick[1]["horizon"].runs["LSTM"].final_eval,
  )
  np.testing.assert_array_equal(lstm.trained.contributions, quick[1]["horizon"].runs["LSTM"].after)
  assert min_gru.trained_by == "dynamics" and math.isfinite(min_gru.final_eval)
  assert not lstm.linear and min_gru.linear
  for run in result.cells.values():
    for m in (run.init, run.trained):
      assert m.lyapunov.shape == (sizes.probe_batch,) and np.isfinite(m.lyapunov).all()
      assert m.contributions.shape == (sizes.train_time,)
      assert 1 <= m.horizon <= sizes.train_time
      assert m.decay_rate > 0 and math.isfinite(m.log_rho)
      assert set(m.newton) == set(dynamics.METHODS)
      for sw in m.newton.values():
        assert sw.times == sizes.times and sw.max_iter == sizes.max_iter
        assert sw.iterations.shape == sw.converged.shape == (2, sizes.newton_batch)
        assert ((sw.iterations >= 1) & (sw.iterations <= sizes.max_iter)).all()
  assert [p.gain for p in result.sweep] == list(sizes.gains)
  for p in result.sweep:
    assert p.lyapunov.shape == (sizes.sweep_batch,) and np.isfinite(p.lyapunov).all()
    assert p.newton.times == sizes.times


@pytest.mark.slow
def test_dynamics_linear_cell_is_one_sweep_and_padding_changes_no_count(quick):
  result, sizes = quick[1]["dynamics"], dynamics.QUICK
  for m in (result.cells["min_gru"].init, result.cells["min_gru"].trained):
    for sw in m.newton.values():
      assert (sw.iterations == 1).all() and sw.converged.all()
  # The T = 20 runs were padded to 100 inside one solve; alone they take the same sweeps.
  key = jax.random.key(0)
  cell, task = _common.cell("lstm", sizes.hidden), _common.task("adding", sizes.train_time)
  params = dynamics._measure._initial_params(cell, task, key).cell
  xs = (
    _common.task("adding", 20)
    .sample(jax.random.fold_in(jax.random.fold_in(key, 11), 20), sizes.newton_batch)
    .xs
  )
  _, _, info = gj.parallel_scan(cell, params, xs, method="deer", max_iter=sizes.max_iter)
  np.testing.assert_array_equal(
    result.cells["lstm"].init.newton["deer"].iterations[0], info.iterations
  )


@pytest.mark.slow
def test_dynamics_the_science_at_quick_sizes(quick):
  """Below the edge of chaos λ_max < 0 and DEER converges; above it λ_max > 0; and the
  gradient's decay per step is the Lyapunov exponent (log ρ ≈ λ_max) where it contracts."""
  result = quick[1]["dynamics"]
  low, high = result.sweep[0], result.sweep[-1]
  assert low.lam < 0 < high.lam
  assert low.newton.converged.all()
  assert dynamics.crossing(result) is not None and 0.5 < dynamics.crossing(result) < 3.0
  assert abs(low.log_rho - low.lam) < 0.05
  assert dynamics.agreement(result)["median_abs_difference"] < 0.1


@pytest.mark.slow
def test_state_tracking_quick_run_structure(quick):
  result, sizes = quick[1]["state_tracking"], state_tracking.QUICK
  assert result.sizes == sizes
  assert [r.cell for r in result.parity] == list(sizes.parity_cells)
  assert [r.cell for r in result.flip_flop] == list(sizes.flip_cells)
  (run,) = result.parity
  assert run.accuracy.shape == run.separation.shape == (len(sizes.test_lengths),)
  assert np.all((run.accuracy >= 0) & (run.accuracy <= 1)) and not run.error
  assert math.isfinite(run.lyapunov) and 1 <= run.horizon <= sizes.probe_length
  (flip,) = result.flip_flop
  assert set(flip.per_read) == set(state_tracking._measure.FLIP_TESTS)
  # "All reads correct" is never above the per-read accuracy.
  assert all(flip.all_reads[k] <= flip.per_read[k] + 1e-6 for k in flip.per_read)
  assert result.seconds > 0 and len(state_tracking.runs_of(sizes)) == 2


@pytest.mark.slow
def test_the_canned_results_are_quick_runs_of_today(quick, results):
  """The canned results (tests/data) have the skeleton of today's QUICK runs: when a room's
  result changes shape, tests/data/make_canned.py writes them again."""
  for name, result in quick[1].items():
    fresh = canned.skeleton(canned.encode(canned.trim(name, result)))
    assert fresh == canned.skeleton(canned.encode(results[name])), name


# ---------------------------------------------------------------------------
# The loop over the rooms, on canned results
# ---------------------------------------------------------------------------


def test_the_report_is_a_loop_over_the_rooms(tmp_path, canned_rooms):
  results = canned_rooms
  document = report.write_report(tmp_path / "new" / "report", quick=True)
  out = tmp_path / "new" / "report"
  md = (out / "report.md").read_text()
  headings = re.findall(r"^## (\d)\. (.*)$", md, flags=re.M)
  titles = [report.ROOMS[n].TITLE if n in report.ROOMS else None for n in report.SECTIONS]
  assert [t for _, t in headings[:5] if t not in titles] == [
    "The seed's claims against the measurements"
  ]
  assert [int(n) for n, _ in headings[:6]] == [1, 2, 3, 4, 5, 6]
  assert headings[5][1] == state_tracking.TITLE
  for name, room in report.ROOMS.items():
    assert json.loads(json.dumps(document[name])) == json.loads(
      json.dumps(room.to_json(results[name]))
    )
    assert room.to_markdown(results[name]) in md
  assert document["verdict"] == report.verdict(results)
  assert json.loads((out / "report.json").read_text())["verdict"] == document["verdict"]


def test_a_new_report_replaces_the_earlier_one_whole(tmp_path, canned_rooms):
  out = tmp_path / "report"
  out.mkdir()
  (out / "report.md").write_text("earlier")
  (out / "gates_old_figure.png").write_bytes(b"old")
  document = report.write_report(out, quick=True)
  assert sorted(p.name for p in out.iterdir()) == sorted([*document["figures"], *report.FILES])
  assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_failure_while_writing_leaves_the_earlier_report(tmp_path, monkeypatch, canned_rooms):
  out = tmp_path / "report"
  out.mkdir()
  (out / "report.md").write_text("earlier")

  def broken(result):
    raise RuntimeError("disk full")

  monkeypatch.setattr(dynamics, "to_json", broken)
  with pytest.raises(RuntimeError, match="disk full"):
    report.write_report(out, quick=True)
  assert [p.name for p in out.iterdir()] == ["report.md"]
  assert (out / "report.md").read_text() == "earlier"
  assert [p.name for p in tmp_path.iterdir()] == ["report"]  # the staging directory is gone


def test_the_verdict_follows_the_numbers(results):
  text = " ".join(report.verdict(results))
  assert "**一, the near gradient dominates a plain RNN's**: holds" in text
  assert "**二/三, gates let the gradient reach far**: not shown at this size" in text
  h = results["horizon"]
  learned = {
    name: r._replace(final_eval=(h.baseline if name == "RNN" else 0.05 * h.baseline))
    for name, r in h.runs.items()
  }
  text = " ".join(report.verdict({**results, "horizon": h._replace(runs=learned)}))
  assert (
    "holds after training (learned the adding problem at T = 20: GRU, LSTM; did not: RNN" in text
  )
  g = results["gates"]
  acts = {
    p: {
      n: a._replace(gates={k: f._replace(dead=0.0) for k, f in a.gates.items()})
      for n, a in by.items()
    }
    for p, by in g.activity.items()
  }
  text = " ".join(report.verdict({**results, "gates": g._replace(activity=acts)}))
  assert "**四.2, ReLU suppresses one side**: not everywhere" in text


def test_the_dynamics_room_reuses_the_horizon_rooms_models_only_when_they_are_its_runs(results):
  h = results["horizon"]._replace(
    runs={n: r._replace(params="trained") for n, r in results["horizon"].runs.items()}
  )
  reused = report._trained_by_horizon(h, dynamics.QUICK)
  assert list(reused) == ["rnn", "gru", "lstm"]
  assert reused["lstm"].params == "trained"
  np.testing.assert_array_equal(reused["gru"].contributions[1], h.runs["GRU"].after)
  assert report._trained_by_horizon(h, dynamics.QUICK._replace(train_steps=41)) == {}
  assert gates.QUICK.train_time == horizon.QUICK.time  # one compiled LSTM training step


def test_check_output(tmp_path):
  report.check_output(tmp_path / "missing" / "report")  # created when written
  (tmp_path / "report.md").write_text("")
  (tmp_path / "vanishing_contributions.png").write_bytes(b"")
  report.check_output(tmp_path)  # an earlier report
  (tmp_path / "notes.txt").write_text("")
  with pytest.raises(ValueError, match=r"out '.*' holds files that are not a report's \(notes"):
    report.check_output(tmp_path)
  with pytest.raises(ValueError, match=r"--out '.*notes.txt' exists and is not a directory"):
    report.check_output(tmp_path / "notes.txt", name="--out")
  with pytest.raises(ValueError, match="is a mount point"):
    report.check_output(Path("/"))


def test_sizes_for_a_report():
  """Quick: every room's QUICK; full: every room's FULL; by default a room's REPORT sizes where
  it has them (the state-tracking room's reduced version), else its FULL."""
  for name, room in report.ROOMS.items():
    assert report.sizes_for(room, quick=True) is room.QUICK
    assert report.sizes_for(room, full=True) is room.FULL
    default = report.sizes_for(room)
    assert default is (state_tracking.REPORT if name == "state_tracking" else room.FULL)
  assert state_tracking.REPORT != state_tracking.FULL
  assert report.estimate_seconds(full=True) == state_tracking.estimate_seconds(state_tracking.FULL)
  assert report.estimate_seconds() < report.estimate_seconds(full=True)
  with pytest.raises(ValueError, match="quick and full exclude each other"):
    report.sizes_for(gates, quick=True, full=True)
  with pytest.raises(ValueError, match="quick and full exclude each other"):
    report.run_experiments(quick=True, full=True, key=jax.random.key(0))


def test_full_runs_the_rooms_at_full_sizes_with_a_bar(monkeypatch):
  seen = {}

  def drawing(sizes, *, key, progress=None, bar=False, name, **extra):
    seen[name] = (sizes, bar)
    return name

  def plain(sizes, *, key, progress=None, name, **extra):
    seen[name] = (sizes, None)
    return name

  for name, room in report.ROOMS.items():
    # A room whose run draws no bar is not handed one.
    fake = drawing if "bar" in inspect.signature(room.run).parameters else plain
    monkeypatch.setattr(room, "run", functools.partial(fake, name=name))
  monkeypatch.setattr(report, "_trained_by_horizon", lambda h, sizes: {})
  results = report.run_experiments(full=True, key=jax.random.key(0), bar=True)
  assert results == {name: name for name in report.ROOMS}
  assert seen["state_tracking"] == (state_tracking.FULL, True)
  others = {n: room for n, room in report.ROOMS.items() if n != "state_tracking"}
  assert all(seen[n] == (room.FULL, None) for n, room in others.items())


def test_a_rooms_name_may_hold_an_underscore(tmp_path):
  """An earlier report's state-tracking figures are the report's own, not foreign files."""
  out = tmp_path / "report"
  out.mkdir()
  for name in ("report.md", "state_tracking_parity.png", "gates_training.png"):
    (out / name).write_text("x")
  report.check_output(out)
  (out / "state_tracking.png").write_text("x")  # no role: not a figure of the report
  with pytest.raises(ValueError, match=r"state_tracking\.png"):
    report.check_output(out)
