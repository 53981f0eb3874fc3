"""The state-tracking experiment (issue 19): its sizes, the state separation against NumPy, and
its writing on a canned result whose numbers the tests vary, so that the findings are seen to
follow them. Its one run end to end is the report's QUICK run (tests/test_report.py).

The canned result (tests/data/state_tracking_canned.json, written by ``to_json``) is a tiny run
of every part: parity (minGRU in (0, 1) and (−1, 1) with two seeds, the GRU with one), cycle
navigation, flip-flop, and minGRU's (0, 2) range; the report's own QUICK run is
tests/data/state_tracking_quick.json (tests/test_report.py).
"""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gatejax import plots
from gatejax.experiments import state_tracking as st
from gatejax.experiments.state_tracking import _measure

CANNED = Path(__file__).parent.parent / "data" / "state_tracking_canned.json"


@pytest.fixture(scope="module")
def document():
  return json.loads(CANNED.read_text())


@pytest.fixture
def result(document):
  return st.from_json(document)


def _set(result, part, cell, **fields):
  """``result`` with the runs of ``cell`` in ``part`` changed."""
  runs = tuple(r._replace(**fields) if r.cell == cell else r for r in getattr(result, part))
  return result._replace(**{part: runs})


# ---------------------------------------------------------------------------
# Sizes and the measure
# ---------------------------------------------------------------------------


def test_sizes_are_the_door():
  for sizes in (st.FULL, st.REPORT, st.QUICK):
    assert st.check_sizes(sizes) is sizes
  assert st.FULL.test_lengths == (10, 40, 80, 160, 256, 512) and st.FULL.train_length == 40
  assert set(st.FULL.parity_cells) == {
    *(f"{c}{s}" for c in ("min_gru", "min_lstm", "s6", "delta_net") for s in ("", "/neg")),
    *("mlstm", "rg_lru", "lru", "slstm", "rnn", "gru", "lstm"),
  }
  # Every variant builds its cell, and the options reach it.
  assert st.build("min_gru/neg", 4).options.negative_eigenvalues is True
  assert st.build("min_gru/tanh", 4).options.gate_fn(jnp.float32(0.5)) == jnp.tanh(0.5)
  # One run per seed and rate; the slow cells one seed.
  runs = st.runs_of(st.FULL)
  assert runs.count(("parity", "min_gru")) == 2 and runs.count(("parity", "s6")) == 1
  assert st.estimate_seconds(st.FULL) > st.estimate_seconds(st.REPORT) > 0


@pytest.mark.parametrize(
  ("change", "error", "match"),
  [
    ({"hidden": 0}, ValueError, r"sizes\.hidden must be an int >= 1"),
    ({"parity_steps": -1}, ValueError, r"sizes\.parity_steps must be an int >= 0"),
    ({"test_lengths": ()}, ValueError, r"sizes\.test_lengths"),
    ({"learning_rates": (0.0,)}, ValueError, r"sizes\.learning_rates"),
    ({"parity_cells": ("mamba",)}, ValueError, r"sizes\.parity_cells must be drawn from"),
    ({"flip_length": 1}, ValueError, r"sizes\.flip_length"),
    ({"probe_length": 1}, ValueError, r"sizes\.probe_length"),
  ],
)
def test_bad_sizes_are_refused(change, error, match):
  with pytest.raises(error, match=match):
    st.run(st.QUICK._replace(**change), key=jax.random.key(0))


def test_sizes_must_be_sizes():
  with pytest.raises(TypeError, match=r"state_tracking\.Sizes"):
    st.run((4, 8), key=jax.random.key(0))  # type: ignore[arg-type]
  with pytest.raises(TypeError, match=r"state_tracking\.Sizes"):
    st.estimate_seconds({"hidden": 4})  # type: ignore[arg-type]


def _separation_numpy(states, labels):
  """The definition, written out: mean pairwise distance of the present classes' means over
  the root mean squared distance of each state to its class mean."""
  classes = sorted(set(labels.tolist()))
  means = {c: states[labels == c].mean(axis=0) for c in classes}
  spread = math.sqrt(
    np.mean([np.sum((s - means[y]) ** 2) for s, y in zip(states, labels, strict=True)])
  )
  gaps = [
    np.linalg.norm(means[a] - means[b]) for i, a in enumerate(classes) for b in classes[i + 1 :]
  ]
  return float(np.mean(gaps)) / spread


def test_state_separation_against_numpy():
  rng = np.random.default_rng(0)
  for num_classes, shift in ((2, 3.0), (5, 0.5)):
    labels = rng.integers(0, num_classes, 64)
    labels[:num_classes] = np.arange(num_classes)
    states = rng.normal(size=(64, 6)) + shift * labels[:, None]
    got = float(st.separation(jnp.asarray(states, jnp.float32), jnp.asarray(labels), num_classes))
    assert got == pytest.approx(_separation_numpy(states, labels), rel=1e-4)
  # A class with no member is left out, not counted as a mean at 0.
  labels = np.array([0, 0, 2, 2])
  states = np.array([[0.0], [2.0], [10.0], [12.0]])
  got = float(st.separation(jnp.asarray(states, jnp.float32), jnp.asarray(labels), 3))
  assert got == pytest.approx(10.0)
  # Complex states count their real and imaginary parts as features.
  z = rng.normal(size=(32, 3)) + 1j * rng.normal(size=(32, 3))
  labels = rng.integers(0, 2, 32)
  flat = np.concatenate([z.real, z.imag], axis=1)
  got = float(st.separation(jnp.asarray(z, jnp.complex64), jnp.asarray(labels), 2))
  assert got == pytest.approx(_separation_numpy(flat, labels), rel=1e-4)
  # One class present: undefined.
  assert math.isnan(float(st.separation(jnp.ones((4, 2)), jnp.zeros(4, jnp.int32), 2)))


def test_rank_correlation_against_scipy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=40)
  y = x + rng.normal(size=40)
  y[:5] = y[5]  # ties
  assert st.rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
  assert math.isnan(st.rank_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_lyapunov_of_a_complex_diagonal_cell_is_its_closed_form():
  """The LRU's complex carry (real and imaginary parts) has λ_max = max_i mean_t log|a_ti| for
  a diagonal map; the one-tangent estimate reaches it up to its start, O(1/T)."""
  cell = st.build("lru", 4)
  params = cell.init(jax.random.key(0), input_size=2)
  xs = jax.random.normal(jax.random.key(1), (640, 3, 2))
  a = np.abs(np.asarray(cell.affine(params, xs).a))
  expected = np.mean(np.max(np.mean(np.log(a[640 // 16 :]), axis=0), axis=-1))
  assert _measure.lyapunov(cell, params, xs) == pytest.approx(float(expected), rel=1e-5)


def test_a_run_that_raises_is_reported_and_the_sweep_goes_on(monkeypatch):
  def broken(*args, **kwargs):
    raise RuntimeError("no luck")

  monkeypatch.setattr(_measure, "_flip_run", broken)
  monkeypatch.setattr(_measure, "_last_step_run", broken)
  result = st.run(st.QUICK, key=jax.random.key(0))
  assert [r.error for r in (*result.parity, *result.flip_flop)] == ["RuntimeError: no luck"] * 2
  assert any("did not finish: RuntimeError: no luck" in f for f in st.findings(result))
  assert "error" in st.runs_table(result)
  json.dumps(st.to_json(result), allow_nan=False)


# ---------------------------------------------------------------------------
# Findings follow the numbers (canned result, numbers varied)
# ---------------------------------------------------------------------------


def _perfect_until(lengths, limit):
  return np.array([1.0 if n <= limit else 0.5 for n in lengths])


def test_parity_findings_follow_the_numbers(result):
  lengths = result.sizes.test_lengths  # (4, 12), trained to 6
  at_chance = _set(result, "parity", "min_gru", accuracy=np.array([0.5, 0.5]))
  text = " ".join(st.findings(at_chance))
  assert "at chance beyond the training length in every run (best mean scaled" in text
  assert "none learned parity even within the training lengths (0/2 runs)" in text
  above = _set(result, "parity", "min_gru", accuracy=np.array([1.0, 0.9]))
  text = " ".join(st.findings(above))
  assert "above chance beyond the training length in minGRU (0, 1)" in text
  # The (−1, 1) cell learns the training lengths but fails beyond: a finite horizon.
  short = _set(result, "parity", "min_gru/neg", accuracy=_perfect_until(lengths, 6))
  text = " ".join(st.findings(short))
  assert "minGRU (−1, 1) only to 4: a finite-horizon solution" in text
  whole = _set(result, "parity", "min_gru/neg", accuracy=np.array([1.0, 1.0]))
  text = " ".join(st.findings(whole))
  assert "holds to 12 in minGRU (−1, 1)" in text and "finite-horizon" not in text
  gru = _set(result, "parity", "gru", accuracy=np.array([1.0, 1.0]))
  assert "Nonlinear cells that held parity to 12 in at least one run: GRU" in " ".join(
    st.findings(gru)
  )


def _predictive(result, by):
  """Every parity run learned to length 6; beyond it accuracy follows ``by`` ("separation" or
  "lyapunov"), and the other measure runs against it."""
  runs = []
  for i, r in enumerate(result.parity):
    acc = 0.55 + 0.1 * i
    sep, lam = (acc, -0.1 * (i % 2)) if by == "separation" else (1.0 - 0.1 * (i % 2), acc - 1)
    runs.append(
      r._replace(accuracy=np.array([1.0, acc]), separation=np.array([5.0, sep]), lyapunov=lam)
    )
  return result._replace(parity=tuple(runs))


def test_the_prediction_finding_names_the_measure_that_tracks_accuracy(result):
  text = " ".join(st.findings(_predictive(result, "separation")))
  assert "the state separation predicts best where accuracy fails" in text
  assert "+1.00 with the state separation" in text
  text = " ".join(st.findings(_predictive(result, "lyapunov")))
  assert "the λ_max predicts best where accuracy fails" in text
  p = st.predictors(_predictive(result, "separation"))
  assert p.runs == len(result.parity) and p.points == len(result.parity)
  # r relative to its value at the training length: the run's own scale divided out.
  np.testing.assert_allclose(
    p.failed_relative,
    [r.accuracy[1] / 5.0 for r in _predictive(result, "separation").parity if r.accuracy[1] < 0.95],
  )
  assert "where accuracy failed, r had fallen to" in text.lower() or p.held_relative == []
  none = _set(result, "parity", "min_gru", accuracy=np.array([0.5, 0.5]))
  none = _set(none, "parity", "min_gru/neg", accuracy=np.array([0.5, 0.5]))
  none = _set(none, "parity", "gru", accuracy=np.array([0.5, 0.5]))
  assert any("too few runs solved parity" in f for f in st.findings(none))


def test_memory_and_stability_findings_follow_the_numbers(result):
  perfect = _set(
    result,
    "flip_flop",
    "min_gru",
    per_read={k: 1.0 for k in _measure.FLIP_TESTS},
    all_reads={k: 1.0 for k in _measure.FLIP_TESTS},
  )
  assert any(f.startswith("Gates in (0, 1) suffice for memory") for f in st.findings(perfect))
  assert not any(f.startswith("Gates in (0, 1) suffice") for f in st.findings(result))
  sparse = _set(
    result,
    "flip_flop",
    "min_gru",
    per_read={"train p": 1.0, "sparse": 0.8, "dense": 1.0},
    all_reads={"train p": 1.0, "sparse": 0.1, "dense": 1.0},
  )
  text = " ".join(st.findings(sparse))
  assert (
    "minGRU (0, 1) holds a bit on train p, dense (at least 99% of reads right) but not on sparse (0.8)"
    in text
  )
  assert any("(0, 2) expands: λ_max > 0 in 2/2 runs" in f for f in st.findings(result))
  calm = _set(result, "stability", "min_gru/tanh", lyapunov=-0.1)
  assert any("did not expand" in f for f in st.findings(calm))


def test_the_literature_reading_follows_the_numbers(result):
  p = st.Published("paper", "parity", "GRU", "gru", 1.0, "accuracy", "big")
  agrees = _set(result, "parity", "gru", accuracy=np.array([1.0, 1.0]))
  assert _measure_ours(agrees, p) == 1.0
  assert st._write._why(agrees, p, 1.0) == "agrees"
  unlearned = _set(result, "parity", "gru", accuracy=np.array([0.5, 0.5]))
  assert st._write._why(unlearned, p, 0.5).startswith("lower: no run learned")
  finite = _set(result, "parity", "gru", accuracy=np.array([1.0, 0.5]))
  assert "fails from length 12" in st._write._why(finite, p, 0.5)


def _measure_ours(result, p):
  return st._write.ours(result, p)


# ---------------------------------------------------------------------------
# Writing: markdown, JSON both ways, figures
# ---------------------------------------------------------------------------


def test_markdown_holds_every_table_and_finding(result):
  md = st.to_markdown(result, {"parity": "st_parity.png"})
  assert md.startswith("**Reduced version**")  # not the FULL sizes: said so
  for table in (
    st.accuracy_table(result),
    st.runs_table(result),
    st.accuracy_table(result, "cycle"),
    st.flip_table(result),
    st.stability_table(result),
  ):
    assert table and table in md
  assert all(f in md for f in st.findings(result))
  assert "![parity accuracy against length](st_parity.png)" in md
  # A row per run in the E2 table; the FULL sizes are not called reduced.
  assert st.runs_table(result).count("\n| minGRU (0, 1) |") == 2
  empty = result._replace(sizes=st.FULL, parity=(), cycle=(), flip_flop=(), stability=())
  assert st.to_markdown(empty).startswith("One layer, hidden 32")


def test_json_round_trip(result):
  broken = _set(result, "parity", "gru", lyapunov=math.nan, probe_grad_norm=math.inf)
  document = json.loads(json.dumps(st.to_json(broken), allow_nan=False))
  back = st.from_json(document)
  assert back.sizes == broken.sizes
  for a, b in zip(
    (*back.parity, *back.cycle, *back.stability),
    (*broken.parity, *broken.cycle, *broken.stability),
    strict=True,
  ):
    for x, y in zip(a, b, strict=True):
      np.testing.assert_array_equal(x, y)
  assert back.flip_flop == broken.flip_flop
  assert document["findings"] == st.findings(broken)
  assert {row["cell"] for row in document["literature"]} == {p.cell for p in st.PUBLISHED}


def test_figures(result):
  figs = st.figures(result)
  try:
    assert set(figs) == {"parity", "separation", "cycle"}
    lines = [l for l in figs["parity"].axes[0].lines if l.get_marker() == "o"]
    assert len(lines) == len(set(r.cell for r in result.parity))
    np.testing.assert_allclose(
      lines[0].get_ydata(), np.mean([r.accuracy for r in result.parity if r.cell == "min_gru"], 0)
    )
  finally:
    for fig in figs.values():
      plots._pyplot().close(fig)
