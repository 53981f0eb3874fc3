"""The report: one ``gatejax report --quick`` end to end, and the loop over the rooms on canned
results (sections in order, the verdict chosen by numbers, written whole or not at all)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import canned
from gatejax import cli, report
from gatejax.experiments import dynamics, gates, horizon


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
  """The slow path's one run: the command, as a user types it (in this process)."""
  out = tmp_path_factory.mktemp("report")
  assert cli.main(["report", "--quick", "--out", str(out)]) == 0
  return out


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
  assert list(document)[-5:] == list(report.SECTIONS)
  # The markdown prints what the JSON holds: the ReLU GRU's dead fraction, as a percentage.
  dead = document["gates"]["activity"]["adding"]["GRU relu"]["gates"]["z"]["dead"]
  assert "| GRU relu | z | " in md and f"{100 * dead:.1f}%" in md
  for room in ("gates", "horizon", "dynamics"):
    assert all(finding in md for finding in document[room]["findings"])
  assert document["verdict"] and all(line in md for line in document["verdict"])
  # The dynamics room measured the horizon room's models instead of training them again.
  assert document["dynamics"]["cells"]["lstm"]["trained_by"] == "horizon"


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
  assert [int(n) for n, _ in headings[:5]] == [1, 2, 3, 4, 5]
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
