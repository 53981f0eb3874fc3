"""``gatejax vanishing`` end to end at a tiny size, and its library function."""

import numpy as np
import pytest

from gatejax import cli
from gatejax.experiments import vanishing


@pytest.mark.slow
def test_command_prints_the_table_and_writes_the_figure(tmp_path, capsys):
  out = tmp_path / "curves.png"
  status = cli.main(
    ["vanishing", "--time", "12", "--hidden", "4", "--batch", "2", "--out", str(out)]
  )
  assert status == 0
  text = capsys.readouterr().out
  labels = ["rnn (tanh)", "gru, update_bias=0", "gru, chrono(12)", "lstm, forget_bias=1"]
  for label in [*labels, "lstm, chrono(12)"]:
    assert label in text
  header = next(line for line in text.splitlines() if line.startswith("cell"))
  assert header.split()[1:5] == ["d=0", "d=1", "d=10", "horizon"]
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_runs_a_chosen_cell_without_a_figure(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  status = cli.main(["vanishing", "--cells", "rnn", "--time", "5", "--hidden", "3", "--out", ""])
  assert status == 0
  text = capsys.readouterr().out
  assert "rnn (tanh)" in text and "lstm" not in text
  assert list(tmp_path.iterdir()) == []


def test_run_vanishing_summaries_agree_with_its_curves():
  result = vanishing.run_vanishing(cells=["gru"], time=30, hidden=4, batch=3)
  assert [run.label for run in result.runs] == ["gru, update_bias=0", "gru, chrono(30)"]
  for run in result.runs:
    assert run.norms.shape == (30,)
    back = run.norms[::-1]
    np.testing.assert_allclose(run.far_share, back[15:].sum() / back.sum(), rtol=1e-5)
    assert back[run.horizon - 1] >= 0.01 * back.max() > back[run.horizon :].max(initial=0)
  assert set(result.curves) == {run.label for run in result.runs}


def test_bad_sizes_are_reported():
  with pytest.raises(ValueError, match="time must be an int >= 3"):
    vanishing.run_vanishing(time=2)
  with pytest.raises(ValueError, match="cells must be among"):
    vanishing.run_vanishing(cells=["transformer"], time=5)
