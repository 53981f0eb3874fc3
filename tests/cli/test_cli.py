"""The ``gatejax`` command: misuse is found before any computation, nothing is overwritten unsaid.

The table of bad arguments is in test_cli_errors.py, ^C in test_cli_interrupt.py; here are
the checks that need more than one call: that they come before the computation, replacing a
report or a figure, the exit status of the process, and each command's output. The
commands' experiments are replaced by canned results where only the command is tested.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import canned
from gatejax import cli, report
from gatejax.cli import args as cli_args
from gatejax.experiments import demo, vanishing


def _unwritable_directory(tmp_path: Path) -> Path:
  """An existing directory that files cannot be created in, even by root."""
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    tempfile.TemporaryFile(dir=locked).close()
  except OSError:
    return locked
  if Path("/sys").is_dir():  # root ignores the mode; /sys refuses it too
    return Path("/sys")
  pytest.skip("no unwritable directory on this machine")


def _never(*args, **kwargs):
  raise AssertionError("computed before the arguments were checked")


def test_report_checks_out_before_computing(tmp_path, monkeypatch, capsys):
  # It used to compute the whole report (49 s with --quick) and then die on the first write.
  monkeypatch.setattr(report, "write_report", _never)
  out = _unwritable_directory(tmp_path)
  assert cli.main(["report", "--quick", "--out", str(out)]) == 2
  err = capsys.readouterr().err
  assert f"gatejax report: error: --out '{out}' is not a writable directory" in err


def test_vanishing_checks_out_before_computing(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(vanishing, "run", _never)
  out = _unwritable_directory(tmp_path) / "curves.png"
  assert cli.main(["vanishing", "--time", "5", "--out", str(out)]) == 2
  assert "cannot write in" in capsys.readouterr().err


def test_report_replaces_an_earlier_report_and_says_so(tmp_path, monkeypatch, capsys):
  written = []

  def write_report(out, **kwargs):
    written.append(out)
    (out / "report.md").write_text("new")

  monkeypatch.setattr(report, "write_report", write_report)
  (tmp_path / "report.md").write_text("earlier")
  assert cli.main(["report", "--out", str(tmp_path)]) == 0
  assert f"replacing an earlier report: {tmp_path / 'report.md'}" in capsys.readouterr().err
  assert (tmp_path / "report.md").read_text() == "new"
  # A fresh directory: no notice.
  assert cli.main(["report", "--out", str(tmp_path / "fresh")]) == 0
  assert "replacing" not in capsys.readouterr().err


def test_report_full_estimates_up_front_and_draws_a_bar(tmp_path, monkeypatch, capsys):
  given = {}

  def write_report(out, **kwargs):
    given.update(kwargs)
    (out / "report.md").write_text("new")

  monkeypatch.setattr(report, "write_report", write_report)
  assert cli.main(["report", "--full", "--out", str(tmp_path / "full")]) == 0
  assert given["full"] is True and given["bar"] is True and given["quick"] is False
  err = capsys.readouterr().err
  minutes = report.estimate_seconds(full=True) / 60
  assert f"estimated at {minutes:.0f} min" in err and "gatejax report --full: writing" in err
  # The default report: neither, and no estimate.
  assert cli.main(["report", "--out", str(tmp_path / "default")]) == 0
  assert given["full"] is False and given["bar"] is False
  assert "estimated" not in capsys.readouterr().err


def test_report_quick_and_full_exclude_each_other(tmp_path, capsys):
  assert cli.main(["report", "--quick", "--full", "--out", str(tmp_path)]) == 2
  assert "not allowed with argument" in capsys.readouterr().err


def test_report_help_says_an_earlier_report_is_replaced(capsys):
  assert cli.main(["report", "--help"]) == 0
  out = capsys.readouterr().out
  assert "an earlier report there is replaced" in " ".join(out.split()) and "--quick" in out
  assert "--full" in out


def test_the_process_exits_with_status_2_and_one_error_line():
  """``python -m gatejax``, the program itself (``gatejax`` is the same ``entry``)."""
  result = subprocess.run(
    [sys.executable, "-m", "gatejax", "demo", "--time", "0"], capture_output=True, text=True
  )
  assert result.returncode == 2
  assert result.stdout == ""
  assert result.stderr.splitlines()[-1] == (
    "gatejax demo: error: argument --time: must be an int >= 3, got 0"
  )
  assert "Traceback" not in result.stderr


def test_every_command_has_its_help_and_the_demo_is_the_default(monkeypatch, capsys):
  assert list(cli.COMMANDS) == ["demo", "vanishing", "report"]
  for name, command in cli.COMMANDS.items():
    assert cli.main([name, "--help"]) == 0
    assert command.HELP in capsys.readouterr().out
  ran = []
  monkeypatch.setattr(cli.demo, "main", lambda args: ran.append(args.time) or 0)
  assert cli.main([]) == 0 and ran == [200]


def _fake_demo(sizes, *, key):
  profiles = {"rnn (tanh)": [1.0] * sizes.time, "gru": [2.0] * sizes.time}
  return demo.Result(sizes, profiles, {"rnn (tanh)": 0.5, "gru": 0.25})


def test_demo_prints_the_table_of_its_sizes(monkeypatch, capsys):
  monkeypatch.setattr(demo, "run", _fake_demo)
  assert cli.main(["demo", "--time", "12", "--hidden", "3"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "‖∂L/∂x_(T-d)‖ for L = ‖y_T‖², T = 12, hidden 3, batch 16"
  assert lines[1].split() == ["cell", "d=1", "d=10", "time"]
  assert lines[-1] == "The full argument, with figures: gatejax report"


@pytest.mark.slow
def test_vanishing_prints_the_table_and_writes_the_figure(tmp_path, capsys):
  """The command end to end (one cell: the configurations are tested with the room)."""
  out = tmp_path / "curves.png"
  argv = ["vanishing", "--cells", "rnn", "--time", "12", "--hidden", "4", "--batch", "2"]
  assert cli.main([*argv, "--out", str(out)]) == 0
  text = capsys.readouterr().out
  header = next(line for line in text.splitlines() if line.startswith("cell"))
  assert header.split()[1:5] == ["d=0", "d=1", "d=10", "horizon"]
  row = next(line for line in text.splitlines() if line.startswith("rnn (tanh)"))
  assert row.split()[2] == "1.0e+00"  # d = 0 holds the peak of a tanh RNN's contributions
  assert text.splitlines()[-1] == f"Figure: {out}"
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no partial file left


def test_vanishing_runs_the_classic_cells_unless_told(monkeypatch):
  ran = []
  monkeypatch.setattr(cli.vanishing, "main", lambda args: ran.append(args.cells) or 0)
  assert cli.main(["vanishing"]) == 0 and ran == [["rnn", "gru", "lstm"]]


def test_vanishing_takes_every_built_in_cell_by_name(monkeypatch):
  """--cells takes each name of gatejax.cells.names.CELLS (the modern cells included),
  separated by spaces or commas, in the order given."""
  from gatejax.cells import names

  ran = []
  monkeypatch.setattr(cli.vanishing, "main", lambda args: ran.append(args.cells) or 0)
  every = list(names.CELLS)
  assert {"slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net"} <= set(every)
  assert cli.main(["vanishing", "--cells", *every]) == 0
  assert cli.main(["vanishing", "--cells", ",".join(every)]) == 0
  assert cli.main(["vanishing", "--cells", "slstm,mlstm", "rg_lru", "s6, lru,delta_net"]) == 0
  assert ran == [every, every, ["slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net"]]


@pytest.mark.slow
def test_vanishing_runs_modern_cells_at_tiny_sizes(capsys):
  """End to end with a modern cell of each kind of carry Jacobian: sLSTM (state-dependent),
  DeltaNet (a matrix a_t), LRU (a complex diagonal); one row each."""
  argv = ["vanishing", "--cells", "slstm,delta_net", "lru", "--time", "4", "--hidden", "8"]
  assert cli.main([*argv, "--batch", "1", "--out", ""]) == 0
  lines = capsys.readouterr().out.splitlines()
  rows = {line.split()[0]: line.split() for line in lines[3:6]}
  assert list(rows) == ["slstm", "delta_net", "lru"]
  for row in rows.values():
    assert float(row[1]) > 0 and row[3] == "4"  # d = 0 contributes; every step counts
  assert lines[-1].endswith(" s for 3 sweeps.")


def _canned_vanishing(sizes, *, key):
  return canned.load("vanishing")


def test_vanishing_says_when_it_replaces_a_figure_in_the_format_asked(
  tmp_path, monkeypatch, capsys
):
  monkeypatch.setattr(vanishing, "run", _canned_vanishing)
  out = tmp_path / "curves.svg"
  argv = ["vanishing", "--cells", "rnn", "--time", "5", "--hidden", "3", "--out", str(out)]
  assert cli.main(argv) == 0
  assert capsys.readouterr().out.splitlines()[-1] == f"Figure: {out}"
  assert out.read_text().lstrip().startswith("<?xml")
  assert cli.main(argv) == 0
  assert capsys.readouterr().out.splitlines()[-1] == f"Figure: {out} (replaced the existing file)"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.svg"]


def test_vanishing_without_a_figure_writes_nothing(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(vanishing, "run", _canned_vanishing)
  monkeypatch.chdir(tmp_path)
  assert cli.main(["vanishing", "--cells", "rnn", "--time", "5", "--out", ""]) == 0
  assert "rnn (tanh)" in capsys.readouterr().out
  assert list(tmp_path.iterdir()) == []


def test_available_memory_is_read():
  free, kind = cli_args.available_memory()
  assert free is None or free > 0
  assert kind
  if os.path.exists("/proc/meminfo"):
    import jax

    if jax.default_backend() == "cpu":
      assert free is not None and kind == "available RAM"
