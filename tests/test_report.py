"""``gatejax report --quick`` end to end: every promised file is written and consistent."""

import json
import re
import subprocess
import sys

import pytest

from gatejax import cli


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("report")
  assert cli.main(["report", "--quick", "--out", str(out)]) == 0
  return out


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
  assert sorted(p.name for p in report_dir.glob("*.png")) == sorted(set(links))


@pytest.mark.slow
def test_report_sections_and_numbers(report_dir):
  md = (report_dir / "report.md").read_text()
  for heading in (
    "## 1. Vanishing gradients",
    "## 2. Why sigmoid, not ReLU",
    "## 3. Training on the adding problem",
    "## 4. The seed's claims",
  ):
    assert heading in md
  document = json.loads((report_dir / "report.json").read_text())
  assert document["quick"] is True
  assert set(document) >= {"vanishing", "gates", "horizon", "verdict", "seconds"}
  gates = document["gates"]
  # The markdown prints what the JSON holds: the ReLU GRU's dead fraction, as a percentage.
  dead = gates["activity"]["adding"]["GRU relu"]["gates"]["z"]["dead"]
  assert "| GRU relu | z | " in md and f"{100 * dead:.1f}%" in md
  for finding in gates["findings"] + document["horizon"]["findings"]:
    assert finding in md
  assert document["verdict"] and all(line in md for line in document["verdict"])


def test_python_dash_m_entry_point_has_the_command():
  result = subprocess.run(
    [sys.executable, "-m", "gatejax", "report", "--help"], capture_output=True, text=True
  )
  assert result.returncode == 0
  assert "--quick" in result.stdout and "--out" in result.stdout
