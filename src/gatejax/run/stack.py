"""Stacks: several layers, each run by :func:`gatejax.scan`, optionally bidirectional."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from gatejax import _validate, protocol
from gatejax.run.options import ScanOptions, resolve_options
from gatejax.run.scan import scan

__all__ = ["Bidirectional", "Stack", "scan_stack", "stack"]

Params = Any
Carry = Any


class Bidirectional(NamedTuple):
  """A pair for one bidirectional layer: its ``forward`` and ``backward`` params or carries."""

  forward: Any
  backward: Any


class Stack(NamedTuple):
  """Layers run in order; layer ``k + 1`` reads layer ``k``'s outputs.

  Attributes:
    layers: one :class:`~gatejax.cells.Cell` per layer.
    bidirectional: whether each layer runs both ways and concatenates
      ``[forward, backward]`` features (so a layer outputs ``2 * hidden_size``).
  """

  layers: tuple[Any, ...]
  bidirectional: bool

  @property
  def num_directions(self) -> int:
    return 2 if self.bidirectional else 1

  @property
  def output_size(self) -> int:
    """Features per step of the last layer's output."""
    return self.layers[-1].hidden_size * self.num_directions

  def init(
    self, key: PRNGKeyArray, input_size: int, *, dtype: DTypeLike = jnp.float32
  ) -> tuple[Params, ...]:
    """Parameters: a tuple over layers of cell params (:class:`Bidirectional` pairs if bidirectional)."""
    params = []
    for cell, layer_key in zip(self.layers, jax.random.split(key, len(self.layers)), strict=True):
      if self.bidirectional:
        k_f, k_b = jax.random.split(layer_key)
        params.append(
          Bidirectional(
            forward=cell.init(k_f, input_size, dtype=dtype),
            backward=cell.init(k_b, input_size, dtype=dtype),
          )
        )
      else:
        params.append(cell.init(layer_key, input_size, dtype=dtype))
      input_size = cell.hidden_size * self.num_directions
    return tuple(params)

  def initial_carry(
    self, batch_shape: tuple[int, ...] = (), dtype: DTypeLike = jnp.float32
  ) -> tuple[Carry, ...]:
    """Zero carries: a tuple over layers (:class:`Bidirectional` pairs if bidirectional)."""
    carries = []
    for cell in self.layers:
      c = cell.initial_carry(batch_shape, dtype)
      carries.append(Bidirectional(c, c) if self.bidirectional else c)
    return tuple(carries)


def _pair(name: str, layer: int, value: Any) -> None:
  if not isinstance(value, Bidirectional):
    raise TypeError(
      f"{name}[{layer}] of a bidirectional stack must be gj.Bidirectional(forward, backward), "
      f"got {type(value).__name__}"
    )


def stack(
  cells: Any | Sequence[Any], *, num_layers: int | None = None, bidirectional: bool = False
) -> Stack:
  """Describe a multi-layer and/or bidirectional network, as PyTorch's ``num_layers`` and ``bidirectional``.

  Args:
    cells: one cell (any cell of :mod:`gatejax.protocol`), repeated ``num_layers`` times,
      or a sequence of cells, one per layer (they may differ in type and hidden size).
    num_layers: number of layers when ``cells`` is a single cell (default 1).
    bidirectional: run every layer forwards and backwards and concatenate.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> net = gj.stack(gj.gru(8), num_layers=2, bidirectional=True)
    >>> params = net.init(jax.random.key(0), input_size=3)
    >>> carries, ys = gj.scan_stack(net, params, jnp.ones((5, 4, 3)))
    >>> ys.shape, carries[1].backward.shape
    ((5, 4, 16), (4, 8))
  """
  if protocol.is_cell(cells):
    if num_layers is None:
      num_layers = 1
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
      raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
    layers = (cells,) * num_layers
  else:
    layers = tuple(cells)
    if num_layers is not None and num_layers != len(layers):
      raise ValueError(f"num_layers={num_layers} but {len(layers)} cells were given")
    if not layers:
      raise ValueError("cells must hold at least one Cell")
    for k, cell in enumerate(layers):
      _validate.cell(cell, f"cells[{k}]")
  return Stack(layers=layers, bidirectional=bool(bidirectional))


def scan_stack(
  net: Stack,
  params: Sequence[Params],
  xs: Float[Array, "time *batch input"],
  *,
  carry: Sequence[Carry] | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
  unroll: int | bool = 1,
  impl: str = "auto",
  remat: int | bool | None = None,
  matmul_dtype: DTypeLike | None = None,
  block: int | None = None,
  chunk_size: int | None = None,
  options: ScanOptions | None = None,
) -> tuple[tuple[Carry, ...], Float[Array, "time *batch features"]]:
  """Run a :class:`Stack`: each layer through :func:`~gatejax.run.scan.scan`, layer ``k + 1`` reading layer ``k``.

  A bidirectional layer runs a forward scan and a ``reverse=True`` scan (both honouring
  ``lengths``) and concatenates their outputs along the feature axis, forward first.

  Args:
    net: from :func:`stack`.
    params: from ``net.init``: a tuple over layers.
    xs: inputs ``(time, *batch, input_size)``.
    carry: initial carries as ``net.initial_carry`` lays them out, or ``None`` for zeros.
    lengths: as in :func:`~gatejax.run.scan.scan`.
    reverse: run a unidirectional stack right to left (not allowed when bidirectional).
    unroll, impl, remat, matmul_dtype, block, chunk_size: as in :func:`~gatejax.scan`, for
      every layer.
    options: all of those in one :class:`~gatejax.run.options.ScanOptions`, for every layer.

  Returns:
    ``(carries, ys)``: a tuple over layers of final carries (:class:`Bidirectional`
    pairs if bidirectional), and the last layer's outputs
    ``(time, *batch, net.output_size)``.
  """
  if not isinstance(net, Stack):
    raise TypeError(f"net must be a gj.Stack (from gj.stack), got {type(net).__name__}")
  if net.bidirectional and reverse:
    raise ValueError("reverse=True has no meaning for a bidirectional stack")
  params = tuple(params) if isinstance(params, list | tuple) else params
  if not isinstance(params, tuple) or len(params) != len(net.layers):
    raise ValueError(
      f"params must be a tuple of {len(net.layers)} layer parameters, got {params!r:.80}"
    )
  if carry is not None:
    carry = tuple(carry) if isinstance(carry, list | tuple) else carry
    if not isinstance(carry, tuple) or len(carry) != len(net.layers):
      raise ValueError(f"carry must be a tuple of {len(net.layers)} layer carries")
  options = resolve_options(
    options,
    impl=impl,
    remat=remat,
    matmul_dtype=matmul_dtype,
    block=block,
    unroll=unroll,
    chunk_size=chunk_size,
  )
  run = partial(scan, options=options)
  carries = []
  for k, (cell, layer_params) in enumerate(zip(net.layers, params, strict=True)):
    layer_carry = None if carry is None else carry[k]
    try:
      if net.bidirectional:
        _pair("params", k, layer_params)
        if layer_carry is not None:
          _pair("carry", k, layer_carry)
        c_f, y_f = run(
          cell,
          layer_params.forward,
          xs,
          carry=None if layer_carry is None else layer_carry.forward,
          lengths=lengths,
        )
        c_b, y_b = run(
          cell,
          layer_params.backward,
          xs,
          carry=None if layer_carry is None else layer_carry.backward,
          lengths=lengths,
          reverse=True,
        )
        carries.append(Bidirectional(c_f, c_b))
        xs = jnp.concatenate([y_f, y_b], axis=-1)
      else:
        c, xs = run(cell, layer_params, xs, carry=layer_carry, lengths=lengths, reverse=reverse)
        carries.append(c)
    except (TypeError, ValueError) as e:
      if k == 0:
        raise
      raise type(e)(f"layer {k}: {e}") from None
  return tuple(carries), xs
