r"""A Flax NNX layer over the pure core: :class:`Recurrent`.

The core keeps parameters as plain pytrees and cells as values; Flax NNX keeps them as
``nnx.Param`` attributes of a mutable module. :class:`Recurrent` is the thin bridge: it
holds one cell's (or one :func:`gatejax.stack`'s) parameters, in exactly the pytree layout
that ``cell.init`` returns, each leaf wrapped in an ``nnx.Param``, and its ``__call__``
unwraps them and runs :func:`gatejax.scan` (or :func:`gatejax.scan_stack`). Nothing is
recomputed differently, so for the same parameters the layer's outputs are the pure API's
outputs, bit for bit.

Use it inside an ordinary Flax model, trained with ``nnx.Optimizer`` and optax:

.. code-block:: python

  class Model(nnx.Module):
    def __init__(self, rngs):
      self.embed = nnx.Embed(vocab, 16, rngs=rngs)
      self.rnn = gatejax.nnx.Recurrent(gj.gru(32), 16, rngs=rngs, time_major=False)
      self.head = nnx.Linear(32, classes, rngs=rngs)

    def __call__(self, tokens):  # (batch, time)
      _, ys = self.rnn(self.embed(tokens))
      return self.head(ys[:, -1])

The state path of a parameter mirrors the pure pytree: ``params/w_x`` for a cell,
``params/0/forward/w_h`` for layer 0 of a bidirectional stack.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from gatejax.cells import Cell
from gatejax.sequence import Stack, scan, scan_stack, stack

__all__ = ["Recurrent", "check_params"]

Params = Any
Carry = Any


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def check_params(
  net: Cell | Stack, params: Params, input_size: int, *, name: str = "params"
) -> None:
  """Raise unless ``params`` has the pytree structure and shapes of ``net.init(key, input_size)``.

  One check for every place that receives parameters from outside (a module, a
  checkpoint), so that parameters of another cell, size or layout fail with a clear
  error instead of a silent reshape or a trace-time error deep inside the scan.

  Args:
    net: a :class:`~gatejax.cells.Cell` or :class:`~gatejax.sequence.Stack`.
    params: the parameters to check.
    input_size: the number of input features the parameters should read.
    name: how to call ``params`` in the message.

  Raises:
    TypeError: the pytree structure differs (another cell kind, another number of layers)
      or a leaf is not floating point.
    ValueError: a leaf has another shape (another hidden or input size).

  Example:
    >>> import jax, gatejax as gj
    >>> from gatejax.nnx import check_params
    >>> params = gj.gru(4).init(jax.random.key(0), input_size=3)
    >>> check_params(gj.gru(4), params, 3)
    >>> check_params(gj.gru(5), params, 3)
    Traceback (most recent call last):
    ...
    ValueError: params do not fit a gru cell (hidden 5) reading 3 inputs: params.w_x has shape (3, 12), expected (3, 15)
  """
  if not isinstance(net, Cell | Stack):
    raise TypeError(f"net must be a gj.Cell or gj.Stack, got {type(net).__name__}")
  expected = jax.eval_shape(lambda: net.init(jax.random.key(0), input_size))
  what = _describe(net) + f" reading {input_size} inputs"
  want, got = jax.tree.structure(expected), jax.tree.structure(params)
  if want != got:
    raise TypeError(f"{name} do not fit {what}: expected the pytree {want}, got {got}")
  paths = jax.tree_util.tree_flatten_with_path(expected)[0]
  for (path, e), leaf in zip(paths, jax.tree.leaves(params), strict=True):
    where = name + jax.tree_util.keystr(path)
    if tuple(np.shape(leaf)) != e.shape:
      raise ValueError(
        f"{name} do not fit {what}: {where} has shape {tuple(np.shape(leaf))}, expected {e.shape}"
      )
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise TypeError(f"{where} must have a floating dtype, got {jnp.result_type(leaf)}")


def _describe(net: Cell | Stack) -> str:
  if isinstance(net, Cell):
    return f"a {net.kind} cell (hidden {net.hidden_size})"
  layers = ", ".join(f"{c.kind} {c.hidden_size}" for c in net.layers)
  return f"a {'bidirectional ' if net.bidirectional else ''}stack ({layers})"


def _input_size(net: Cell | Stack, params: Params) -> int:
  """The input size that ``params`` read: the rows of the first layer's ``w_x``."""
  first = params if isinstance(net, Cell) else params[0]
  if isinstance(net, Stack) and net.bidirectional:
    first = first.forward
  try:
    return int(np.shape(first.w_x)[0])
  except AttributeError:
    raise TypeError(f"params do not fit {_describe(net)}: no w_x in {first!r:.80}") from None


class Recurrent(nnx.Module):
  r"""A recurrent layer (one cell or a stack of layers) as a Flax NNX module.

  The parameters are ``self.params``: the pytree of ``cell.init`` (or ``net.init`` for
  a stack) with each array wrapped in an ``nnx.Param``. Calling the layer runs
  :func:`gatejax.scan` (or :func:`gatejax.scan_stack`) on the unwrapped arrays:

  .. math:: (c_T, y_{1..T}) = \mathrm{scan}(\text{cell}, \theta, x_{1..T})

  Args:
    net: a :class:`~gatejax.cells.Cell`, or a :class:`~gatejax.sequence.Stack`
      from :func:`gatejax.stack` (layers, bidirectional).
    input_size: features per step of the input.
    rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initialisation key;
      not needed when ``params`` is given.
    num_layers: build ``gj.stack(net, num_layers=...)`` from a single cell.
    bidirectional: build ``gj.stack(net, bidirectional=True)`` from a single cell.
    time_major: inputs and outputs are ``(time, *batch, features)`` as in the pure
      API (default); ``False`` takes ``(*batch, time, features)`` as ``nnx.RNN`` does.
    dtype: parameter dtype at initialisation.
    params: start from these pure parameters instead of a fresh initialisation
      (checked against ``net`` and ``input_size``); see :meth:`from_params`.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> from flax import nnx
    >>> from gatejax.nnx import Recurrent
    >>> layer = Recurrent(gj.lstm(8), 3, rngs=nnx.Rngs(0))
    >>> carry, ys = layer(jnp.ones((5, 2, 3)))
    >>> ys.shape, carry.c.shape
    ((5, 2, 8), (2, 8))
    >>> pure = layer.to_params()                  # plain LSTMParams of arrays
    >>> bool((gj.scan(layer.net, pure, jnp.ones((5, 2, 3)))[1] == ys).all())
    True
  """

  def __init__(
    self,
    net: Cell | Stack,
    input_size: int,
    *,
    rngs: nnx.Rngs | None = None,
    num_layers: int | None = None,
    bidirectional: bool = False,
    time_major: bool = True,
    dtype: DTypeLike = jnp.float32,
    params: Params | None = None,
  ):
    if isinstance(net, Cell):
      if num_layers is not None or bidirectional:
        net = stack(net, num_layers=num_layers, bidirectional=bidirectional)
    elif isinstance(net, Stack):
      if num_layers is not None or bidirectional:
        raise ValueError(
          "num_layers and bidirectional are set by the gj.Stack itself; leave them out"
        )
    else:
      raise TypeError(f"net must be a gj.Cell or gj.Stack, got {type(net).__name__}")
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
      raise ValueError(f"input_size must be an int >= 1, got {input_size!r}")
    if params is None:
      if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"rngs must be an nnx.Rngs (or pass params=), got {type(rngs).__name__}")
      params = net.init(rngs.params(), input_size, dtype=dtype)
    else:
      check_params(net, params, input_size)
      params = jax.tree.map(jnp.asarray, params)
    self.net = nnx.static(net)
    self.input_size = nnx.static(input_size)
    self.time_major = nnx.static(bool(time_major))
    self.params = nnx.data(jax.tree.map(nnx.Param, params))

  @classmethod
  def from_params(cls, net: Cell | Stack, params: Params, *, time_major: bool = True) -> Recurrent:
    """A layer holding ``params`` (pure parameters, e.g. from ``cell.init`` or a trained run).

    Example:
      >>> import jax, gatejax as gj
      >>> from gatejax.nnx import Recurrent
      >>> params = gj.gru(4).init(jax.random.key(0), input_size=2)
      >>> layer = Recurrent.from_params(gj.gru(4), params)
      >>> bool((layer.to_params().w_h == params.w_h).all())
      True
    """
    return cls(net, _input_size(net, params), params=params, time_major=time_major)

  def to_params(self) -> Params:
    """The pure parameters: the pytree of ``net.init`` holding the current arrays."""
    return jax.tree.map(lambda v: v[...], self.params, is_leaf=_is_variable)

  def load_params(self, params: Params) -> None:
    """Overwrite the parameters in place with pure ``params`` of the same layout and shapes."""
    check_params(self.net, params, self.input_size)
    leaves = jax.tree.leaves(self.params, is_leaf=_is_variable)
    for variable, value in zip(leaves, jax.tree.leaves(params), strict=True):
      variable[...] = jnp.asarray(value, variable[...].dtype)

  def initial_carry(
    self, batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32
  ) -> Carry:
    """Zero carries, as ``net.initial_carry`` lays them out."""
    return self.net.initial_carry(batch_shape, dtype)

  def __call__(
    self,
    xs: Float[Array, "time *batch input"],
    *,
    carry: Carry | None = None,
    lengths: Int[Array, "*batch"] | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
  ) -> tuple[Carry, Float[Array, "time *batch features"]]:
    """Run the layer; arguments and results as :func:`gatejax.scan` / :func:`gatejax.scan_stack`.

    With ``time_major=False`` the time axis of ``xs`` and of the returned outputs is the
    second to last, ``(*batch, time, features)``.
    """
    if not self.time_major:
      if np.ndim(xs) < 2:
        raise ValueError(f"xs must have shape (*batch, time, input), got {tuple(np.shape(xs))}")
      xs = jnp.moveaxis(xs, -2, 0)
    params, net = self.to_params(), self.net
    if isinstance(net, Cell):
      carry, ys = scan(
        net, params, xs, carry=carry, lengths=lengths, reverse=reverse, unroll=unroll
      )
    else:
      carry, ys = scan_stack(
        net, params, xs, carry=carry, lengths=lengths, reverse=reverse, unroll=unroll
      )
    if not self.time_major:
      ys = jnp.moveaxis(ys, 0, -2)
    return carry, ys
