"""The vanishing room: its writing on a canned QUICK result, its sizes and memory estimate.

Its one QUICK run is the report's: tests/test_report.py checks the summaries against the
curves of that run.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import canned
from gatejax.experiments import vanishing


@pytest.fixture(scope="module")
def result():
  return canned.load("vanishing")


def test_bad_sizes_are_reported():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="time must be an int >= 3"):
    vanishing.run(vanishing.QUICK._replace(time=2), key=key)
  with pytest.raises(ValueError, match="cells must be among"):
    vanishing.run(vanishing.QUICK._replace(cells=("transformer",)), key=key)
  with pytest.raises(TypeError, match=r"vanishing\.Sizes"):
    vanishing.run({"time": 5}, key=key)  # type: ignore[arg-type]


def test_configurations_label_each_bias():
  labels = list(vanishing.configurations(["rnn", "lstm", "min_lstm"], 50, 4))
  assert labels == ["rnn (tanh)", "lstm, forget_bias=1", "lstm, chrono(50)", "min_lstm"]


def test_the_canned_result_is_a_quick_run(result):
  assert result.sizes == vanishing.QUICK
  assert [r.label for r in result.runs][:2] == ["rnn (tanh)", "lstm, forget_bias=1"]
  assert [r.linear for r in result.runs] == [False, False, False, True]
  assert [r.kind for r in result.runs] == ["rnn", "lstm", "lstm", "min_gru"]
  assert [r.form for r in result.runs] == [None, None, None, "diagonal"]


@pytest.mark.slow
def test_every_built_in_cell_is_a_configuration_with_its_kind_and_form():
  """Each cell of the report's default list runs, labelled by its factory's name, and a cell
  linear in its carry records the form of its coefficients (read from the cell itself)."""
  import gatejax as gj
  from gatejax import affine

  assert vanishing.FULL.cells == vanishing.CELL_KINDS
  modern = ("slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net")
  assert set(modern) <= set(vanishing.CELL_KINDS)
  sizes = vanishing.Sizes(cells=(*modern, gj.min_gru(4)), time=4, hidden=8, batch=1)
  got = vanishing.run(sizes, key=jax.random.key(0))
  assert [r.label for r in got.runs] == [*modern, "gj.min_gru(4)"]
  assert [r.kind for r in got.runs] == [*modern, None]
  xs = jnp.zeros((1, 1, sizes.input_size))
  for r, name in zip(got.runs[:-1], modern, strict=True):
    cell = gj.cells.names.CELLS[name](8)
    expected = None
    if cell.affine is not None:
      expected = cell.affine(cell.init(jax.random.key(0), sizes.input_size), xs).form
    assert r.linear == (cell.affine is not None) and r.form == expected, name
    assert np.isfinite(r.norms).all() and r.norms.shape == (4,), name
  assert {r.kind: r.form for r in got.runs if r.linear} == {
    "rg_lru": "diagonal",
    "s6": "diagonal",
    "lru": "diagonal",
    "delta_net": "matrix",
    None: "diagonal",
  }
  assert affine.FORMS == ("diagonal", "matrix")


def test_markdown_holds_the_table_the_findings_and_the_figure(result):
  md = vanishing.to_markdown(result, {"contributions": "v.png"})
  k = vanishing.near_steps(result)
  for r in result.runs:
    label = r.label + (" *(linear)*" if r.linear else "")
    assert f"| {label} | {r.horizon} | {vanishing.near_share(r, k):.3f} |" in md
  assert "(LSTM, whose factories take a keep-gate bias, also with `gj.chrono(30)`)" in md
  for line in vanishing.findings(result):
    assert f"- {line}" in md
  assert md.endswith("![contribution norm against steps back](v.png)")
  assert "](" not in vanishing.to_markdown(result)


def test_near_share_is_the_share_of_the_last_steps(result):
  rnn = vanishing.plain_rnn(result)
  k = vanishing.near_steps(result)
  assert k == result.sizes.time // 10
  assert vanishing.near_share(rnn, k) == pytest.approx(rnn.norms[-k:].sum() / rnn.norms.sum())


def test_findings_follow_the_numbers(result):
  text = " ".join(vanishing.findings(result))
  assert "The tanh RNN's gradient is dominated by the near steps" in text
  assert "min_gru fades by" in text
  assert "gates that read only the input (minGRU): the step Jacobian" in text
  assert "diag(a_t) for minGRU." in text and "matrix" not in text
  rnn = vanishing.plain_rnn(result)
  flat = rnn._replace(norms=np.ones_like(rnn.norms), horizon=result.sizes.time)
  changed = result._replace(runs=(flat, *result.runs[1:]))
  assert not vanishing.dominated_by_near_steps(changed, flat)
  text = " ".join(vanishing.findings(changed))
  assert "was not dominated by the near steps (last 3 steps: 10%; horizon 30 of 30)" in text
  nearsighted = result._replace(
    runs=tuple(r._replace(horizon=2, far_share=1e-6) for r in result.runs)
  )
  assert "Near-sighted at initialisation like the RNN: lstm, forget_bias=1 (2 steps)" in " ".join(
    vanishing.findings(nearsighted)
  )


def test_findings_name_the_modern_cells_by_their_jacobians(result):
  """The linear cells' sentence groups them by the form of a_t, with the titles the cells
  bring; the plain RNN is found by its kind, not its label."""
  min_gru = result.runs[-1]
  modern = (
    min_gru._replace(label="rg_lru", kind="rg_lru", title="RG-LRU"),
    min_gru._replace(label="lru", kind="lru", title="LRU"),
    min_gru._replace(label="delta_net", kind="delta_net", form="matrix", title="DeltaNet"),
  )
  changed = result._replace(runs=(*result.runs, *modern))
  text = " ".join(vanishing.findings(changed))
  assert "gates that read only the input (minGRU, RG-LRU, LRU and DeltaNet)" in text
  assert (
    "diag(a_t) for minGRU, RG-LRU and LRU and a matrix a_t acting on the state for "
    "DeltaNet." in text
  )
  assert f"delta_net fades by {min_gru.decay_rate:.3g} per step back" in text
  # sLSTM and S6 at the report's sizes: a tall peak at the last steps over a slow tail.
  T = result.sizes.time
  lstm = result.runs[1]
  tall = lstm._replace(
    label="slstm", kind="slstm", title="sLSTM", horizon=3, far_share=0.06, decay_rate=0.991
  )
  lines = vanishing.findings(result._replace(runs=(result.runs[0], tall)))
  sentence = next(line for line in lines if line.startswith("A short horizon over a long tail"))
  assert "slstm (horizon 3, factor 0.991 per step back, far share 6.0%)" in sentence
  assert f"{T // 2} or more steps back still holds at least 1.0%" in sentence
  assert not any(line.startswith("Near-sighted") for line in lines)
  short = tall._replace(far_share=1e-9)
  lines = vanishing.findings(result._replace(runs=(result.runs[0], short)))
  assert any(
    line.startswith("Near-sighted at initialisation like the RNN: slstm (3") for line in lines
  )
  assert not any("long tail" in line for line in lines)
  relabelled = result._replace(runs=(result.runs[0]._replace(label="tanh"), *result.runs[1:]))
  assert vanishing.plain_rnn(relabelled) is relabelled.runs[0]
  assert vanishing.plain_rnn(result._replace(runs=result.runs[1:])) is None


def test_json_is_strict_and_holds_the_curves(result):
  doc = json.loads(json.dumps(vanishing.to_json(result), allow_nan=False))
  assert doc["sizes"]["time"] == result.sizes.time
  for r in result.runs:
    entry = doc["cells"][r.label]
    np.testing.assert_allclose(entry["contribution_norms"], r.norms)
    assert entry["horizon"] == r.horizon and entry["linear_in_carry"] == r.linear


def test_terminal_table_prints_relative_contributions(result):
  text = vanishing.format_table(result)
  header = next(line for line in text.splitlines() if line.startswith("cell"))
  assert header.split()[1:5] == ["d=0", "d=1", "d=10", "horizon"]
  rnn = vanishing.plain_rnn(result)
  row = next(line for line in text.splitlines() if line.startswith(rnn.label))
  back = rnn.norms[::-1] / rnn.norms.max()
  assert row.split()[2:5] == [f"{back[0]:.1e}", f"{back[1]:.1e}", f"{back[10]:.1e}"]


def test_figure(result):
  import matplotlib.pyplot as plt

  figs = vanishing.figures(result)
  assert list(figs) == ["contributions"]
  plt.close(figs["contributions"])


def _xla_bytes(fn, *args) -> int | None:
  analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
  if analysis is None:
    return None
  return analysis.temp_size_in_bytes + analysis.argument_size_in_bytes


@pytest.mark.slow
@pytest.mark.parametrize(
  "kind", ["rnn", "lstm", "mgu", "min_lstm", "slstm", "mlstm", "rg_lru", "s6", "lru", "delta_net"]
)
def test_the_memory_estimate_covers_what_xla_allocates(kind):
  # `gatejax vanishing` refuses sizes by this estimate: it must not fall below XLA's own
  # figure (a change in the core that stores more per step shows up here).
  from gatejax import analysis

  sizes = vanishing.Sizes(cells=(kind,), time=300, hidden=24, batch=4)
  xs = jax.ShapeDtypeStruct((sizes.time, sizes.batch, sizes.input_size), jnp.float32)
  estimate = vanishing.estimated_bytes(sizes)
  # The first configuration: a chrono bias changes values, not the shapes XLA allocates.
  for cell in list(vanishing.configurations([kind], sizes.time, sizes.hidden).values())[:1]:
    params = jax.eval_shape(lambda cell=cell: cell.init(jax.random.key(0), sizes.input_size))
    used = _xla_bytes(
      lambda p, x, cell=cell: analysis.contribution_norms(
        cell, p, x, lambda ys, _: jnp.sum(ys[-1] ** 2)
      ),
      params,
      xs,
    )
    if used is None:
      pytest.skip("this backend has no memory analysis")
    assert used <= estimate <= 2 * used, (used, estimate)
