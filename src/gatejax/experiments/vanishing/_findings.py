"""Reading the vanishing experiment: the near share, and sentences chosen by the numbers."""

from __future__ import annotations

import jax.numpy as jnp

from gatejax import analysis
from gatejax.experiments import _common
from gatejax.experiments.vanishing._measure import Result, Run

#: A run whose horizon stops short of half the sequence while its far half still holds this
#: share of the contributions has a long tail under a tall peak (said apart from the
#: near-sighted ones).
TAIL_SHARE = 0.01


def near_steps(result: Result) -> int:
  """How many of the last steps count as near: a tenth of the sequence, at least one."""
  return max(1, result.sizes.time // 10)


def near_share(run: Run, k: int) -> float:
  """The share of the contribution norms in the last ``k`` steps
  (:func:`gatejax.analysis.near_share`)."""
  return float(analysis.near_share(jnp.asarray(run.norms), k))


def plain_rnn(result: Result) -> Run | None:
  """The tanh RNN's run (the built-in ``rnn``), if the experiment ran one."""
  return next((r for r in result.runs if r.kind == "rnn"), None)


def _names(runs: list[Run]) -> str:
  names = list(dict.fromkeys(r.title for r in runs))
  return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def dominated_by_near_steps(result: Result, run: Run) -> bool:
  """The seed's picture of vanishing: the near steps hold most of the gradient and the
  horizon stops short of the sequence's start."""
  return near_share(run, near_steps(result)) > 0.5 and run.horizon < result.sizes.time


def findings(result: Result) -> list[str]:
  """Sentences chosen by the measured values (nothing is a fixed conclusion)."""
  T, k = result.sizes.time, near_steps(result)
  lines = []
  rnn = plain_rnn(result)
  if rnn is not None:
    near = near_share(rnn, k)
    if dominated_by_near_steps(result, rnn):
      lines.append(
        f"The tanh RNN's gradient is dominated by the near steps: the last {k} of {T} steps "
        f"hold {near:.0%} of it, and nothing farther than {rnn.horizon} steps back reaches "
        f"{result.sizes.fraction:.0%} of the largest step. The far gradient is not zero, it is "
        "outweighed: what the seed means by vanishing (总的梯度受近距离梯度的主导)."
      )
    else:
      lines.append(
        f"Here the tanh RNN's gradient was not dominated by the near steps (last {k} steps: "
        f"{near:.0%}; horizon {rnn.horizon} of {T}): the seed's picture did not show."
      )
    gated = [r for r in result.runs if r is not rnn]
    far = [r for r in gated if r.horizon >= T // 2]
    tail = [r for r in gated if r.horizon < T // 2 and r.far_share >= TAIL_SHARE]
    near_sighted = [
      r for r in gated if r.horizon < T // 2 and not r.linear and r.far_share < TAIL_SHARE
    ]
    if far:
      lines.append(
        "Reaching at least half the sequence at initialisation: "
        + ", ".join(f"{r.label} ({r.horizon} steps)" for r in far)
        + "."
      )
    if near_sighted:
      lines.append(
        "Near-sighted at initialisation like the RNN: "
        + ", ".join(f"{r.label} ({r.horizon} steps)" for r in near_sighted)
        + ". A keep gate starts near σ(bias), a factor below 1 per step, so gates alone do not "
        "stop the far past from fading; a chrono bias, or training (section 3), opens the path."
      )
    if tail:
      lines.append(
        "A short horizon over a long tail: "
        + ", ".join(
          f"{r.label} (horizon {r.horizon}, factor {r.decay_rate:.3g} per step back, far share "
          f"{_common.pct(r.far_share)})"
          for r in tail
        )
        + f". Their largest contributions, at the last steps, stand more than "
        f"{1 / result.sizes.fraction:.0f} times above the rest, so the horizon stops early; "
        f"yet the half of the sequence {T // 2} or more steps back still holds at least "
        f"{_common.pct(TAIL_SHARE)} of the gradient, fading slowly: the far past is outweighed, "
        "not lost."
      )
  linear = [r for r in result.runs if r.linear]
  if linear:
    diagonal = [r for r in linear if r.form != "matrix"]
    matrix = [r for r in linear if r.form == "matrix"]
    forms = [f"diag(a_t) for {_names(diagonal)}"] if diagonal else []
    forms += [f"a matrix a_t acting on the state for {_names(matrix)}"] if matrix else []
    lines.append(
      f"Linear in the carry, with gates that read only the input ({_names(linear)}): the step "
      "Jacobian is the coefficient a_t of c_t = a_t·c_(t−1) + b_t, set by x_t alone, "
      + " and ".join(forms)
      + ". "
      + "; ".join(
        f"{r.label} fades by {r.decay_rate:.3g} per step back (horizon {r.horizon} of {T})"
        for r in linear
      )
      + ". No gate sees the state, so nothing the state holds can keep its own past alive: "
      "the horizon is fixed by the inputs and the initial parameters (gate biases, decay "
      "rates), and only learning those moves it."
    )
  return lines
