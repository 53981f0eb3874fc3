r"""Per-step contributions to the gradient, their norms, and the adjoint of every carry.

.. math::

  \frac{\partial L}{\partial \theta} = \sum_{t=0}^{T-1} g_t, \qquad
  g_t = \Big(\frac{\partial L}{\partial c_{t+1}}\Big)^{\!\top}
        \frac{\partial f}{\partial \theta}(\theta, c_t, x_t)

Each function is one forward sweep that stores the carries and one reverse sweep that applies
``jax.vjp`` of the cell's own step at each step (see :mod:`gatejax.analysis`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

import gatejax.analysis._norms as _norms
import gatejax.analysis._sweep as _sweep
import gatejax.run.fused as fused
import gatejax.run.loop as loop
import gatejax.run.prepare as prepare
from gatejax import protocol
from gatejax._jit import bounded_jit
from gatejax.run.options import ScanOptions

__all__ = ["carry_gradients", "contribution_norms", "step_contributions"]

Params = Any
Carry = Any
#: ``loss_fn(ys, final_carry) -> scalar``: what the analysed gradient is the gradient of.
LossFn = Callable[[Array, Carry], Array]


def _loss_cotangents(loss_fn: LossFn, ys: Array, final: Carry) -> tuple[Array, Carry]:
  """``(∂L/∂ys, ∂L/∂c_T)``, after checking that ``loss_fn`` returns a real scalar."""
  out = jax.eval_shape(loss_fn, ys, final)
  if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
    shape = getattr(out, "shape", type(out).__name__)
    raise ValueError(f"loss_fn(ys, final_carry) must return a scalar, got {shape}")
  if not jnp.issubdtype(out.dtype, jnp.floating):
    raise TypeError(f"loss_fn(ys, final_carry) must return a real float, got {out.dtype}")
  return jax.grad(loss_fn, argnums=(0, 1))(ys, final)


@bounded_jit(static_argnames=("cell", "loss_fn", "emit", "options"))
def _backward(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  loss_fn: LossFn,
  emit: Literal["contributions", "norms", "carries"],
  options: ScanOptions,
) -> Any:
  """One forward and one reverse sweep; per step emit ``g_t``, ``‖g_t‖`` or ``∂L/∂c_{t+1}``."""
  xs = prepare.clean(xs, lengths)
  parts = fused.recurrence(cell, options.matmul_dtype)
  final, before, ys = _sweep.forward(parts, params, xs, carry, lengths, options.unroll)
  g_ys, g_final = _loss_cotangents(loss_fn, ys, final)
  read = protocol.reader(cell, params, carry, xs[0]) if emit == "carries" else None

  def body(g_after: Carry, inputs: tuple[Array, Array, Carry, Array]) -> tuple[Carry, Any]:
    t, x, c, g_y = inputs
    # One linearisation of step t, pulled back from both of its results: the new carry
    # (read by everything after it) and the output y_t (read by the loss).
    (new, _), vjp = jax.vjp(
      lambda p, c: loop.masked_step(_sweep.step_fn(parts, p), lengths)(c, x, t), params, c
    )
    g_params, g_before = vjp((g_after, g_y))
    if emit == "contributions":
      return g_before, g_params
    if emit == "norms":
      return g_before, _norms.global_norm(g_params)
    if read is None:
      return g_before, g_after
    # y_t is read from c_{t+1}: the carry's adjoint includes the loss's use of y_t.
    g_y = loop.zero_past(t < lengths, g_y) if lengths is not None else g_y
    read_fn = cast(Callable[..., Array], read)
    _, read_vjp = jax.vjp(lambda c1: read_fn(params, c1, x), new)
    (read_t,) = read_vjp(g_y)
    return g_before, jax.tree.map(jnp.add, g_after, read_t)

  time = loop.time(xs.shape[0])
  _, out = jax.lax.scan(
    body, g_final, (time, xs, before, g_ys), reverse=True, unroll=options.unroll
  )
  return out


def _check_loss_fn(loss_fn: Any) -> None:
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable as loss_fn(ys, final_carry), got {loss_fn!r}")


def step_contributions(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Params:
  r"""The exact split of :math:`\partial L / \partial \theta` by time step.

  .. math::

    g_t = \Big(\frac{\partial L}{\partial c_{t+1}}\Big)^{\!\top}
          \frac{\partial\, \mathrm{step}}{\partial \theta}(\theta, c_t, x_t),
    \qquad \sum_{t=0}^{T-1} g_t = \frac{\partial L}{\partial \theta}

  ``g_t`` is the part of the gradient that flows through step ``t``'s use of the
  parameters, its input projection and its recurrence alike, for
  ``L = loss_fn(*reversed(gj.scan(cell, params, xs, carry=carry, lengths=lengths)))``,
  i.e. ``loss_fn(ys, final_carry)``. Steps past a sequence's length contribute exactly zero.
  One forward and one reverse sweep; the result holds ``T`` copies of the parameters (use
  :func:`contribution_norms` when only their sizes are wanted).

  Args:
    cell: a :class:`~gatejax.cells.Cell`.
    params: its parameters.
    xs: inputs ``(time, *batch, input_size)``.
    loss_fn: ``loss_fn(ys, final_carry) -> scalar``. The function is a static argument of
      the compiled sweep: pass the same function object to reuse the compilation.
    carry: initial carry, as in :func:`gatejax.scan`.
    lengths: sequence lengths, as in :func:`gatejax.scan`.
    options: a :class:`~gatejax.ScanOptions`; the sweep honours ``matmul_dtype`` and
      ``unroll`` (``impl``, ``remat`` and ``block`` choose how :func:`gatejax.scan` is
      differentiated; a sweep is its own differentiation, step by step).

  Returns:
    A pytree shaped like ``params`` with a leading axis ``T``: ``contrib[t]`` is ``g_t``.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(4)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> xs = jax.random.normal(jax.random.key(1), (6, 2, 3))
    >>> loss = lambda ys, carry: jnp.sum(ys[-1] ** 2)
    >>> contrib = gj.analysis.step_contributions(cell, params, xs, loss)
    >>> contrib.w_h.shape
    (6, 4, 12)
    >>> grad = jax.grad(lambda p: loss(gj.scan(cell, p, xs)[1], None))(params)
    >>> bool(jnp.allclose(contrib.w_h.sum(0), grad.w_h, atol=1e-6))
    True
  """
  _check_loss_fn(loss_fn)
  xs, carry, lengths, options = _sweep.prepared(
    cell, params, xs, carry, lengths, options, "step_contributions"
  )
  return _backward(cell, params, xs, carry, lengths, loss_fn, "contributions", options)


def contribution_norms(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Float[Array, " time"]:
  r"""The global L2 norm of every step's contribution, :math:`\lVert g_t \rVert_2`.

  The norm is taken over all parameter leaves together, inside the reverse sweep, so only
  one step's contribution is alive at a time: memory is that of a gradient plus the
  stored carries (``T × batch × carry`` numbers), whatever the parameter count. It is
  computed in a way that neither underflows nor overflows for far, tiny contributions.
  Arguments as :func:`step_contributions`.

  Returns:
    ``(T,)``: ``norms[t] = ‖g_t‖``; ``norms[::-1][d]`` is the contribution ``d`` steps back.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.rnn(16)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jax.random.normal(jax.random.key(1), (50, 8, 4))
    >>> norms = gj.analysis.contribution_norms(cell, params, xs, lambda ys, c: jnp.sum(ys[-1] ** 2))
    >>> norms.shape
    (50,)
    >>> bool(norms[0] < 1e-3 * norms[-1])    # 49 steps back has all but vanished
    True
  """
  _check_loss_fn(loss_fn)
  xs, carry, lengths, options = _sweep.prepared(
    cell, params, xs, carry, lengths, options, "contribution_norms"
  )
  return _backward(cell, params, xs, carry, lengths, loss_fn, "norms", options)


def carry_gradients(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  loss_fn: LossFn,
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  options: ScanOptions | None = None,
) -> Carry:
  r"""The adjoint of every carry, :math:`\partial L / \partial c_{t+1}` for ``t = 0 .. T-1``.

  ``adj[t]`` is the gradient with respect to the carry *after* step ``t`` (``c_{t+1}``),
  its components taken as independent variables, through every later use of it: the
  output of step ``t`` (``y_t = h_{t+1}``, zero past a sequence's length) and all later
  steps, down to the final carry. ``adj[T-1]`` is thus ``∂L/∂c_T`` plus the output term of
  the last step. Past a sequence's length the carry is held, so its adjoint is that of the
  final carry. One reverse sweep; arguments as :func:`step_contributions`.

  "The output of step ``t``" counts as a use of ``c_{t+1}`` when the cell reads its output
  from its new carry, as every built-in cell does (``y_t = h_{t+1}``): when it offers
  ``read(params, carry, x)``, or when its ``step`` returns one leaf of the new carry as ``y``. A
  cell whose output is computed beside the carry has ``y_t`` as a use of ``c_t`` instead.

  Returns:
    A pytree shaped like the carry with a leading axis ``T`` (for the LSTM a
    :class:`~gatejax.cells.LSTMState` of ``(T, *batch, hidden)`` arrays).

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lstm(4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> xs = jnp.ones((5, 3, 2))
    >>> adj = gj.analysis.carry_gradients(cell, params, xs, lambda ys, c: jnp.sum(c.c))
    >>> adj.c.shape
    (5, 3, 4)
    >>> bool(jnp.all(adj.c[-1] == 1.0))          # ∂(Σ c_T)/∂c_T
    True
  """
  _check_loss_fn(loss_fn)
  xs, carry, lengths, options = _sweep.prepared(
    cell, params, xs, carry, lengths, options, "carry_gradients"
  )
  if xs.shape[0] == 0:  # no step, no carry after one
    return jax.tree.map(lambda leaf: jnp.zeros((0, *leaf.shape), leaf.dtype), carry)
  return _backward(cell, params, xs, carry, lengths, loss_fn, "carries", options)
