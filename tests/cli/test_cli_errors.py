"""Misuse of the command line: one error line (``gatejax COMMAND: error: ...``), status 2,
before anything is computed or written (issue 10's table of bad arguments)."""

import re
from typing import NamedTuple

import pytest

from gatejax import cli


class CliCase(NamedTuple):
  id: str
  argv: list[str]  # "{tmp}" is a fresh directory
  match: str  # the error line after "gatejax COMMAND: error: "


CLI_CASES = [
  CliCase("demo time negative", ["demo", "--time", "-3"], r"argument --time: must be an int >= 3"),
  CliCase("demo time zero", ["demo", "--time", "0"], r"argument --time: must be an int >= 3"),
  CliCase("demo time float", ["demo", "--time", "1e9"], r"argument --time: .*'1e9'"),
  CliCase("demo hidden zero", ["demo", "--hidden", "0"], r"argument --hidden: must be an int >= 1"),
  CliCase(
    "demo seed too large",
    ["demo", "--seed", str(10**20)],
    r"argument --seed: must be an int in \[0, 4294967295\] \(larger seeds repeat smaller ones\)",
  ),
  CliCase("demo seed 2**32", ["demo", "--seed", str(2**32)], r"argument --seed: must be an int in"),
  CliCase("demo seed negative", ["demo", "--seed", "-1"], r"argument --seed: must be an int in"),
  CliCase(
    "demo out of memory",
    ["demo", "--time", "1000000000"],
    r"--time 1000000000 --hidden 32 needs about [\d.]+ TB of memory, more than the .* of ",
  ),
  CliCase(
    "vanishing out of memory",
    ["vanishing", "--time", "1000000000", "--out", ""],
    r"--time 1000000000 --hidden 32 --batch 16 needs about [\d.]+ TB of memory, more than",
  ),
  CliCase(
    "vanishing time 2", ["vanishing", "--time", "2"], r"argument --time: must be an int >= 3"
  ),
  CliCase("vanishing batch 0", ["vanishing", "--batch", "0"], r"argument --batch: must be an int"),
  CliCase(
    "vanishing unknown cell",
    ["vanishing", "--cells", "slstm,transformer"],
    r"argument --cells: invalid choice: 'transformer' \(choose from rnn, gru, .*, delta_net\)",
  ),
  CliCase(
    "vanishing empty cells", ["vanishing", "--cells", ","], r"argument --cells: invalid choice: ','"
  ),
  CliCase("vanishing seed", ["vanishing", "--seed", "-5"], r"argument --seed: must be an int in"),
  CliCase(
    "vanishing out is a directory",
    ["vanishing", "--out", "{tmp}"],
    r"--out '.*' is a directory, not a file name",
  ),
  CliCase(
    "vanishing out in a missing directory",
    ["vanishing", "--out", "{tmp}/missing/curves.png"],
    r"--out '.*': the directory '.*missing' does not exist",
  ),
  CliCase(
    "vanishing out of an unknown format",
    ["vanishing", "--out", "{tmp}/curves.xyz"],
    r"--out '.*': matplotlib cannot write \.xyz files",
  ),
  CliCase(
    "report out is a file",
    ["report", "--out", "{tmp}/file"],
    r"--out '.*file' exists and is not a directory",
  ),
  CliCase(
    "report out below a file",
    ["report", "--out", "{tmp}/file/report"],
    r"--out '.*' is not a writable directory: Not a directory",
  ),
  CliCase("report seed", ["report", "--seed", "99999999999"], r"argument --seed: must be an int"),
  CliCase(
    "report out holds other files",
    ["report", "--out", "{tmp}"],
    r"--out '.*' holds files that are not a report's \(earlier, file\): the report replaces "
    r"the whole directory",
  ),
  CliCase(
    "report out is a mount point",
    ["report", "--out", "/"],
    r"--out '/' (is a mount point, which cannot be replaced|is not a writable directory)",
  ),
  CliCase("unknown command", ["fly"], r"argument COMMAND: invalid choice: 'fly'"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_command_line_misuse_is_one_error_line_and_status_2(case, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)  # a case that were not refused would write its figure here
  (tmp_path / "file").write_text("not a directory")
  (tmp_path / "earlier").mkdir()
  (tmp_path / "earlier" / "report.md").write_text("an earlier report")
  argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
  assert cli.main(argv) == 2
  out, err = capsys.readouterr()
  assert "Traceback" not in err and out == ""
  last = err.rstrip("\n").splitlines()[-1]
  command = "gatejax" if case.id == "unknown command" else f"gatejax {argv[0]}"
  assert re.match(rf"{command}: error: {case.match}", last), last
  assert sum(": error: " in line for line in err.splitlines()) == 1
  assert (tmp_path / "earlier" / "report.md").read_text() == "an earlier report"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "file"]


def test_case_ids_are_unique():
  ids = [c.id for c in CLI_CASES]
  assert len(set(ids)) == len(ids)
