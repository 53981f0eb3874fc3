r"""A Flax NNX layer over the pure core: :class:`~gatejax.nnx.Recurrent`.

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

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from gatejax import _validate, protocol
from gatejax.run import ScanOptions, Stack, scan, scan_stack, stack

__all__ = ["Recurrent", "check_params"]

Params = Any
Carry = Any


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def check_params(net: Any, params: Params, input_size: int, *, name: str = "params") -> None:
  """Raise unless ``params`` has the pytree structure and shapes of ``net.init(key, input_size)``.

  One check for every place that receives parameters from outside (a module, a
  checkpoint), so that parameters of another cell, size or layout fail with a clear
  error instead of a silent reshape or a trace-time error deep inside the scan.

  Args:
    net: a cell (:mod:`gatejax.protocol`) or a :class:`~gatejax.run.stack.Stack`.
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
    ValueError: params do not fit gj.gru(5) reading 3 inputs: params.w_x has shape (3, 12), expected (3, 15)
  """
  _check_net(net)
  expected = jax.eval_shape(lambda: net.init(jax.random.key(0), input_size))
  _validate.tree(expected, params, name=name, what=_describe(net) + f" reading {input_size} inputs")


def _check_net(net: Any) -> None:
  if not isinstance(net, Stack):
    _validate.cell(net, "net")


def _describe(net: Any) -> str:
  if not isinstance(net, Stack):
    return protocol.describe(net)
  layers = ", ".join(protocol.describe(c) for c in net.layers)
  return f"a {'bidirectional ' if net.bidirectional else ''}stack ({layers})"


def _input_size(net: Any, params: Params) -> int:
  """The input size that ``params`` read (told by the first layer's parameter shapes)."""
  first, cell = (params, net) if not isinstance(net, Stack) else (params[0], net.layers[0])
  if isinstance(net, Stack) and net.bidirectional:
    first = first.forward
  size = protocol.input_size_of(cell, first)
  if size is None:
    raise TypeError(
      f"params do not fit {_describe(net)}: their shapes do not tell the input size; "
      "pass input_size to Recurrent(net, input_size, params=params)"
    )
  return size


class Recurrent(nnx.Module):
  r"""A recurrent layer (one cell or a stack of layers) as a Flax NNX module.

  The parameters are ``self.params``: the pytree of ``cell.init`` (or ``net.init`` for
  a stack) with each array wrapped in an ``nnx.Param``. Calling the layer runs
  :func:`gatejax.scan` (or :func:`gatejax.scan_stack`) on the unwrapped arrays:

  .. math:: (c_T, y_{1..T}) = \mathrm{scan}(\text{cell}, \theta, x_{1..T})

  Args:
    net: a cell (any cell of :mod:`gatejax.protocol`), or a :class:`~gatejax.run.stack.Stack`
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
    options: how the layer runs its sequences, a :class:`~gatejax.ScanOptions`
      (``impl``, ``remat``, ``matmul_dtype``, ``block``, ``unroll``); default: the defaults.

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
    net: Any,
    input_size: int,
    *,
    rngs: nnx.Rngs | None = None,
    num_layers: int | None = None,
    bidirectional: bool = False,
    time_major: bool = True,
    dtype: DTypeLike = jnp.float32,
    params: Params | None = None,
    options: ScanOptions | None = None,
  ):
    if isinstance(net, Stack):
      if num_layers is not None or bidirectional:
        raise ValueError(
          "num_layers and bidirectional are set by the gj.Stack itself; leave them out"
        )
    else:
      _check_net(net)
      if num_layers is not None or bidirectional:
        net = stack(net, num_layers=num_layers, bidirectional=bidirectional)
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
    if options is not None and not isinstance(options, ScanOptions):
      raise TypeError(f"options must be a gj.ScanOptions or None, got {type(options).__name__}")
    self.options = nnx.static(options or ScanOptions())
    self.params = nnx.data(jax.tree.map(nnx.Param, params))

  @classmethod
  def from_params(
    cls,
    net: Any,
    params: Params,
    *,
    time_major: bool = True,
    options: ScanOptions | None = None,
    input_size: int | None = None,
  ) -> Recurrent:
    """A layer holding ``params`` (pure parameters, e.g. from ``cell.init`` or a trained run).

    The input size is read from the parameters' shapes; pass ``input_size`` for a cell
    whose parameters do not show it.

    Example:
      >>> import jax, gatejax as gj
      >>> from gatejax.nnx import Recurrent
      >>> params = gj.gru(4).init(jax.random.key(0), input_size=2)
      >>> layer = Recurrent.from_params(gj.gru(4), params)
      >>> bool((layer.to_params().w_h == params.w_h).all())
      True
    """
    size = _input_size(net, params) if input_size is None else input_size
    return cls(net, size, params=params, time_major=time_major, options=options)

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
    unroll: int | bool | None = None,
    options: ScanOptions | None = None,
  ) -> tuple[Carry, Float[Array, "time *batch features"]]:
    """Run the layer; arguments and results as :func:`gatejax.scan` / :func:`gatejax.scan_stack`.

    With ``time_major=False`` the time axis of ``xs`` and of the returned outputs is the
    second to last, ``(*batch, time, features)``. ``options`` (default: the layer's own)
    and ``unroll`` (which overrides theirs) choose how the sequence is run.
    """
    options = self.options if options is None else options
    if unroll is not None:
      options = dataclasses.replace(options, unroll=unroll)
    if not self.time_major:
      if np.ndim(xs) < 2:
        raise ValueError(f"xs must have shape (*batch, time, input), got {tuple(np.shape(xs))}")
      xs = jnp.moveaxis(xs, -2, 0)
    params, net = self.to_params(), self.net
    run = scan_stack if isinstance(net, Stack) else scan
    carry, ys = run(net, params, xs, carry=carry, lengths=lengths, reverse=reverse, options=options)
    if not self.time_major:
      ys = jnp.moveaxis(ys, 0, -2)
    return carry, ys
