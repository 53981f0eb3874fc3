"""The ``gatejax`` command: misuse is found before any computation, nothing is overwritten unsaid.

The table of bad arguments is in test_errors.py; here are the checks that need more than
one call: that they come before the computation, replacing a report, the exit status of the
process, and that the memory estimates do not underestimate.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from gatejax import cli, report
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
  monkeypatch.setattr(vanishing, "run_vanishing", _never)
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


def test_report_help_says_an_earlier_report_is_replaced():
  result = subprocess.run(
    [sys.executable, "-m", "gatejax", "report", "--help"], capture_output=True, text=True
  )
  assert result.returncode == 0
  assert "an earlier report there is replaced" in " ".join(result.stdout.split())


def test_the_process_exits_with_status_2_and_one_error_line():
  result = subprocess.run(
    [sys.executable, "-m", "gatejax", "demo", "--time", "0"], capture_output=True, text=True
  )
  assert result.returncode == 2
  assert result.stdout == ""
  assert result.stderr.splitlines()[-1] == (
    "gatejax demo: error: argument --time: must be an int >= 3, got 0"
  )
  assert "Traceback" not in result.stderr


def test_vanishing_says_when_it_replaces_a_figure(tmp_path, capsys):
  out = tmp_path / "curves.png"
  argv = ["vanishing", "--cells", "rnn", "--time", "5", "--hidden", "3", "--out", str(out)]
  assert cli.main(argv) == 0
  assert capsys.readouterr().out.splitlines()[-1] == f"Figure: {out}"
  assert cli.main(argv) == 0
  assert capsys.readouterr().out.splitlines()[-1] == f"Figure: {out} (replaced the existing file)"


def _xla_bytes(fn, *args) -> int | None:
  analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
  if analysis is None:
    return None
  return analysis.temp_size_in_bytes + analysis.argument_size_in_bytes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rnn", "lstm", "mgu", "min_lstm"])
def test_the_memory_estimates_cover_what_xla_allocates(kind):
  # The refusal is only as good as the estimate: it must not fall below XLA's own figure
  # (a change in the core that stores more per step shows up here).
  from gatejax import analysis

  time, hidden, batch, inputs = 300, 24, 4, 8
  cells = vanishing.configurations([kind], time, hidden)
  xs = jax.ShapeDtypeStruct((time, batch, inputs), jnp.float32)
  for cell in cells.values():
    params = jax.eval_shape(lambda cell=cell: cell.init(jax.random.key(0), inputs))
    used = _xla_bytes(
      lambda p, x, cell=cell: analysis.contribution_norms(
        cell, p, x, lambda ys, _: jnp.sum(ys[-1] ** 2)
      ),
      params,
      xs,
    )
    if used is None:
      pytest.skip("this backend has no memory analysis")
    estimate = vanishing._estimated_bytes([kind], time, hidden, batch, inputs)
    assert used <= estimate <= 2 * used, (used, estimate)
  if kind not in ("rnn", "lstm"):  # the cells of gatejax demo
    return
  cell = {"rnn": demo.gj.rnn, "lstm": demo.gj.lstm}[kind](hidden)
  params = jax.eval_shape(lambda: cell.init(jax.random.key(0), demo.INPUT_SIZE))
  xs = jax.ShapeDtypeStruct((time, demo.BATCH, demo.INPUT_SIZE), jnp.float32)
  used = _xla_bytes(lambda p, x: demo.input_gradient_profile(cell, p, x), params, xs)
  assert used is not None and used <= demo._estimated_bytes(time, hidden)


def test_available_memory_is_read():
  free, kind = cli.available_memory()
  assert free is None or free > 0
  assert kind
  if os.path.exists("/proc/meminfo") and jax.default_backend() == "cpu":
    assert free is not None and kind == "available RAM"
