"""^C (issue 20, item 15): the program ends at once with one line on stderr and status 130,
and a report interrupted while it is written leaves the earlier one as it was.

It used to be swallowed in the first seconds (a ``KeyboardInterrupt`` raised inside an XLA
garbage-collection callback is ignored: the run went on and exited 0), later to print a
fifty-line traceback, and sometimes to end in a segmentation fault during compilation.
"""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

LINE = "gatejax: interrupted"


def _gatejax(*argv: str) -> subprocess.Popen:
  return subprocess.Popen(
    [sys.executable, "-m", "gatejax", *argv],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _finish(process: subprocess.Popen, seconds: float = 60) -> tuple[str, str]:
  try:
    return process.communicate(timeout=seconds)
  except subprocess.TimeoutExpired:
    process.kill()
    _, err = process.communicate()
    pytest.fail(f"still running {seconds} s after ^C; stderr: {err[-2000:]}")


def test_ctrl_c_during_the_report_leaves_the_earlier_one(tmp_path):
  """^C a second after the computing starts (the first compilations, where XLA's callbacks
  swallowed it)."""
  out = tmp_path / "report"
  out.mkdir()
  (out / "report.md").write_text("the earlier report")
  (out / "report.json").write_text("{}")
  process = _gatejax("report", "--quick", "--out", str(out))
  first = process.stderr.readline()  # the first progress line: the computing has begun
  assert "gatejax report --quick: writing" in first, first
  time.sleep(1.0)
  process.send_signal(signal.SIGINT)
  stdout, stderr = _finish(process)
  assert process.returncode == 130, stderr[-2000:]
  assert stderr.splitlines()[-1] == LINE
  assert "Traceback" not in stderr and stdout == ""
  assert (out / "report.md").read_text() == "the earlier report"
  assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
  assert [p.name for p in tmp_path.iterdir()] == ["report"]  # nothing staged left beside it


_SCRIPT = """
import signal, sys, time
from gatejax.cli import interrupt

def command():
  interrupt.on_interrupt(lambda: open(sys.argv[1], "w").write("cleaned"))
  interrupt.on_interrupt(lambda: 1 / 0)  # a cleanup that fails does not stop the others
  # The main thread blocks SIGINT and sleeps: only the thread watching the wakeup pipe can
  # act, as when the main thread is deep in a compilation.
  signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
  print("ready", flush=True)
  time.sleep(60)
  print("not interrupted", flush=True)
  return 0

sys.exit(interrupt.guarded(command))
"""


def test_ctrl_c_acts_at_once_while_the_main_thread_is_busy(tmp_path):
  marker = tmp_path / "cleanup"
  process = subprocess.Popen(
    [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(marker)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  assert process.stdout.readline() == "ready\n"
  began = time.perf_counter()
  process.send_signal(signal.SIGINT)
  stdout, stderr = _finish(process, 30)
  assert time.perf_counter() - began < 20  # not the 60 s of the sleep
  assert (process.returncode, stdout, stderr) == (130, "", f"{LINE}\n")
  assert marker.read_text() == "cleaned"


def _wakeup_fd() -> int:
  fd = signal.set_wakeup_fd(-1)
  signal.set_wakeup_fd(fd)
  return fd


def test_guarded_restores_the_handler_and_descriptor_it_replaced():
  from gatejax.cli import interrupt

  handler, fd = signal.getsignal(signal.SIGINT), _wakeup_fd()
  assert interrupt.guarded(lambda: 7) == 7
  assert (signal.getsignal(signal.SIGINT), _wakeup_fd()) == (handler, fd)
  with pytest.raises(ZeroDivisionError):
    interrupt.guarded(lambda: 1 // 0)
  assert (signal.getsignal(signal.SIGINT), _wakeup_fd()) == (handler, fd)
