"""A directory written whole or not at all (gatejax._swap): stage beside it, then swap in."""

import os
import subprocess
import sys

import pytest

from gatejax import _swap


def _fill(directory, **files):
  for name, text in files.items():
    (directory / name).write_text(text)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_the_new_contents_replace_the_old_whole(tmp_path, monkeypatch, exchange):
  if not exchange:
    monkeypatch.setattr(_swap, "_exchange", lambda a, b: False)
  target = tmp_path / "report"
  target.mkdir()
  _fill(target, **{"old.txt": "old", "both.txt": "old"})
  target.chmod(0o751)
  staging = _swap.stage(target)
  assert staging == _swap.staging_directory(target) and staging.parent == tmp_path
  _fill(staging, **{"new.txt": "new", "both.txt": "new"})
  _swap.swap_in(staging, target)
  assert sorted(p.name for p in target.iterdir()) == ["both.txt", "new.txt"]
  assert (target / "both.txt").read_text() == "new"
  assert oct(target.stat().st_mode & 0o777) == oct(0o751)
  assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_missing_target_is_created_with_its_parents(tmp_path):
  target = tmp_path / "a" / "b" / "report"
  staging = _swap.stage(target)
  _fill(staging, x="1")
  _swap.swap_in(staging, target)
  assert (target / "x").read_text() == "1"


def test_the_exchange_is_one_step_on_linux(tmp_path):
  if not sys.platform.startswith("linux"):
    pytest.skip("renameat2 is Linux's")
  a, b = tmp_path / "a", tmp_path / "b"
  a.mkdir()
  b.mkdir()
  _fill(a, x="a")
  _fill(b, x="b")
  if not _swap._exchange(a, b):
    pytest.skip("this kernel or file system has no RENAME_EXCHANGE")
  assert ((a / "x").read_text(), (b / "x").read_text()) == ("b", "a")


def test_a_symlinked_target_is_replaced_where_it_points(tmp_path):
  real = tmp_path / "real"
  real.mkdir()
  _fill(real, x="old")
  link = tmp_path / "link"
  link.symlink_to(real)
  staging = _swap.stage(link)
  _fill(staging, x="new")
  _swap.swap_in(staging, link)
  assert link.is_symlink() and (real / "x").read_text() == "new"


def test_stage_removes_what_dead_processes_left_and_only_that(tmp_path):
  dead = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"],
    capture_output=True,
    text=True,
    check=True,
  )
  left = tmp_path / f".report.partial-{dead.stdout.strip()}"
  live = tmp_path / f".report.partial-{os.getppid()}"  # a process that is running
  other = tmp_path / f".other.partial-{dead.stdout.strip()}"
  for d in (left, live, other):
    d.mkdir()
  staging = _swap.stage(tmp_path / "report")
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, staging.name])


def test_abandon_leaves_the_old_contents_at_every_point(tmp_path):
  target = tmp_path / "report"
  target.mkdir()
  _fill(target, x="old")
  # Before the swap: the staging directory goes.
  staging = _swap.stage(target)
  _fill(staging, x="new")
  _swap.abandon(target)
  assert (target / "x").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report"]
  # Between the two renames of the fallback: the old contents come back.
  staging = _swap.stage(target)
  _fill(staging, x="new")
  os.rename(target, staging.with_name(staging.name + "-old"))
  _swap.abandon(target)
  assert (target / "x").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report"]
