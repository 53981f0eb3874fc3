r"""Running cells over sequences: :func:`~gatejax.scan`, and stacks with :func:`~gatejax.scan_stack`.

Sequences are time-major, as ``jax.lax.scan``: ``xs`` has shape
``(time, *batch, input)``. Variable lengths are right-padded: a step at
``t >= lengths[b]`` leaves sequence ``b``'s carry unchanged and writes zeros to
its output, so the returned carry is each sequence's carry after its last valid
step, and ``reverse=True`` reads each sequence from its own last valid step back
to its first.

The input half of every step (``cell.project``) has no time dependence, so it is
applied to the whole sequence at once, one large matmul, before the recurrence;
the scan body runs only the recurrent half (``cell.recur``). Both halves are the
cell's own functions, so ``scan`` and ``cell.step`` cannot disagree.

Under reverse-mode differentiation the runners use, by default, a hand-written VJP of
the whole sequence (:mod:`gatejax.fused`): the same numbers as JAX's autodiff of the
scan, with the weight gradients as a few large matmuls after the reverse sweep.
``impl="autodiff"`` selects the plain path (needed for ``jax.jvp``/``jax.jacfwd``);
``remat`` bounds activation memory; ``matmul_dtype=jnp.bfloat16`` runs the matmuls
on bfloat16 operands with float32 results and state; ``block`` sets how many steps
share one projection matmul.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from gatejax import _validate, affine, fused, loop, protocol
from gatejax._jit import bounded_jit

__all__ = [
  "Bidirectional",
  "ScanOptions",
  "Stack",
  "scan",
  "scan_stack",
  "scan_with_gates",
  "stack",
]

Params = Any
Carry = Any

IMPLS = ("auto", "fused", "autodiff", "associative")


@dataclasses.dataclass(frozen=True)
class ScanOptions:
  """How a sequence is run: one hashable value, accepted wherever a sequence is run.

  :func:`scan`, :func:`scan_with_gates`, :func:`scan_stack`, :class:`gatejax.nnx.Recurrent`,
  :mod:`gatejax.train` and :mod:`gatejax.analysis` take it as ``options=``; it is hashable
  (a frozen dataclass), so a jitted function can take it as a static argument. None of the
  fields changes a result beyond rounding: they choose how it is computed.

  Attributes:
    impl: how reverse-mode differentiation runs (the forward pass is the same):
      ``"fused"``, a hand-written VJP of the whole sequence (:mod:`gatejax.fused`);
      ``"autodiff"``, JAX's autodiff of the scan; ``"associative"``, all steps at once
      with ``jax.lax.associative_scan``, for a cell affine in its carry (one that offers
      ``affine``: :func:`gatejax.min_gru`, :func:`gatejax.min_lstm`);
      ``"auto"`` (default): ``"associative"`` where the cell offers it, neither
      ``remat`` nor ``matmul_dtype`` is set and the backend is not a CPU (where the
      sequential loop is 2-6x faster), else ``"fused"``; ``"autodiff"`` when
      :func:`scan` is called under ``jax.jvp`` or ``jax.jacfwd`` (see :func:`scan` for
      ``jax.linearize``).
    remat: bound activation memory under differentiation: an int ``S`` keeps only the
      carry at the start of every ``S`` steps and recomputes the rest in the backward
      pass; ``True`` picks ``S = round(sqrt(time))``; ``None`` (default) keeps all.
    matmul_dtype: run the input projection and the recurrent matmul (and their transposes
      under differentiation) with operands in this dtype (``"bfloat16"``) and results
      accumulated in the compute dtype; the carry, gates and biases stay in the compute
      dtype. ``None`` (default) uses the compute dtype throughout. Needs a cell with a
      ``split`` (not GRU ``reset="before"``).
    block: steps per block: each block projects its inputs with one matmul and, under
      differentiation, forms its weight gradients with one matmul. ``None`` (default): 1
      on a CPU, where per-step arrays staying in cache is what counts, and the whole
      sequence elsewhere. Blocks of up to 16 steps run unrolled.
    unroll: how many steps the compiled loop unrolls (as ``jax.lax.scan``).

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> fast = gj.ScanOptions(matmul_dtype=jnp.bfloat16, remat=True)
    >>> fast.matmul_dtype, hash(fast) == hash(gj.ScanOptions(matmul_dtype="bfloat16", remat=True))
    ('bfloat16', True)
    >>> cell = gj.lstm(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> carry, ys = gj.scan(cell, params, jnp.ones((6, 2, 3)), options=fast)
  """

  impl: str = "auto"
  remat: int | bool | None = None
  matmul_dtype: Any = None
  block: int | None = None
  unroll: int | bool = 1

  def __post_init__(self) -> None:
    if self.impl not in IMPLS:
      raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")
    remat = self.remat
    bad_int = not isinstance(remat, int) or remat < 1
    if remat is not None and not isinstance(remat, bool) and bad_int:
      raise ValueError(
        f"remat must be None, a bool or an int >= 1 (steps per segment), got {remat!r}"
      )
    block = self.block
    if block is not None and (not isinstance(block, int) or isinstance(block, bool) or block < 1):
      raise ValueError(f"block must be None or an int >= 1 (steps per block), got {block!r}")
    _validate.unroll(self.unroll)
    if self.matmul_dtype is not None:
      try:
        dtype = jnp.dtype(self.matmul_dtype)
      except TypeError:
        raise TypeError(
          f"matmul_dtype must be a floating dtype, got {self.matmul_dtype!r}"
        ) from None
      if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"matmul_dtype must be a floating dtype, got {dtype}")
      object.__setattr__(self, "matmul_dtype", dtype.name)


DEFAULT_OPTIONS = ScanOptions()


def resolve_options(options: Any, **keywords: Any) -> ScanOptions:
  """``options``, or a :class:`ScanOptions` of the keywords; refuse both at once."""
  if options is None:
    return ScanOptions(**keywords)
  if not isinstance(options, ScanOptions):
    raise TypeError(f"options must be a gj.ScanOptions or None, got {type(options).__name__}")
  given = [k for k, v in keywords.items() if v != getattr(DEFAULT_OPTIONS, k)]
  if given:
    raise ValueError(
      f"give either options= or the keyword {', '.join(given)}, not both (options={options!r})"
    )
  return options


@bounded_jit(static_argnames=("cell", "reverse", "with_gates", "options"))
def _run(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  *,
  reverse: bool,
  with_gates: bool,
  options: ScanOptions = DEFAULT_OPTIONS,
) -> tuple[Carry, Array, Any]:
  """The one recurrence behind :func:`scan`, :func:`scan_with_gates` and :func:`scan_stack`.

  The fused and autodiff implementations run the same forward scan (``cell.project``
  over the whole sequence, then ``cell.recur`` per step, or ``cell.step`` for a cell
  without that split); they differ only in how reverse-mode differentiation sees it
  (:mod:`gatejax.fused`). A cell linear in its carry may run all steps at once instead.
  """
  impl = options.impl
  if impl == "auto":
    impl = "associative" if _associative_by_default(cell, options) else "fused"
  if impl == "associative":
    if options.remat is not None or options.matmul_dtype is not None:
      raise ValueError(
        'impl="associative" runs every step at once: remat and matmul_dtype do not apply to it'
      )
    return _run_associative(
      cell, params, xs, carry, lengths, reverse=reverse, with_gates=with_gates
    )
  steps = xs.shape[0]
  remat = options.remat
  if remat is True:
    remat = max(1, round(steps**0.5))
  cfg = fused.Config(
    reverse=reverse,
    unroll=options.unroll,
    with_gates=with_gates,
    remat=remat or None,
    matmul_dtype=options.matmul_dtype,
    block=fused.default_block(steps) if options.block is None else options.block,
  )
  runner = fused.run_autodiff if impl == "autodiff" else fused.run
  return runner(cell, cfg, params, xs, carry, lengths)


def _associative_by_default(cell: Any, options: ScanOptions) -> bool:
  """Whether ``impl="auto"`` evaluates a cell affine in its carry all steps at once.

  Off the CPU, where a sequential step costs a kernel launch: yes. On a CPU a sequential
  step costs tens of nanoseconds and the scan's ``O(T log T)`` work and memory traffic lose:
  measured on two cores, the associative scan took 2.1-6.1x the sequential forward time and
  1.7-4.1x its forward+backward time (minGRU, minLSTM; B, T, H from 64, 100, 32 to 8, 4096,
  64; BENCHMARKS.md). ``remat`` and ``matmul_dtype`` ask for the sequential paths.
  """
  plain = options.remat is None and options.matmul_dtype is None
  return plain and protocol.affine_of(cell) is not None and jax.default_backend() != "cpu"


def _run_associative(
  cell: Any,
  params: Params,
  xs: Array,
  carry: Carry,
  lengths: Array | None,
  *,
  reverse: bool,
  with_gates: bool,
) -> tuple[Carry, Array, Any]:
  r"""A cell affine in its carry, every step at once: :math:`c_t = a_t \cdot c_{t-1} + b_t`.

  The coefficients of every step come from ``cell.affine`` in one call; the carries are one
  :func:`gatejax.affine.solve` (``jax.lax.associative_scan``, :math:`O(\log T)` depth), a
  padded step the identity map (:func:`gatejax.affine.mask`). The outputs are read from the
  carries (``cell.read``, or the carry leaf that ``step`` returns as ``y``), else computed by
  ``step`` from each step's input carry, all steps at once.
  """
  affine_fn = protocol.affine_of(cell)
  if affine_fn is None:
    raise ValueError(
      f'impl="associative" needs a cell affine in its carry (one that offers affine); '
      f"{protocol.describe(cell)} does not"
    )
  lengths = loop.int32(lengths)
  xs = loop.clean_inputs(xs, lengths)
  steps = xs.shape[0]
  parts = protocol.recurrence(cell)
  if steps == 0:
    x0 = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
    _, y, g = jax.eval_shape(
      lambda c, x: parts.recur(params, c, parts.project(params, x)), carry, x0
    )
    empty = lambda a: jnp.zeros((0, *a.shape), a.dtype)
    return carry, empty(y), jax.tree.map(empty, g) if with_gates else ()
  valid = None if lengths is None else loop.valid_steps(steps, lengths)
  aff = affine.check(affine_fn(params, xs), carry, steps, f"{protocol.describe(cell)}.affine")
  carries = affine.solve(affine.mask(aff, valid), carry, reverse=reverse)
  final = jax.tree.map(lambda c: c[0] if reverse else c[-1], carries)
  first = jax.tree.map(lambda c: c[None], carry)
  if reverse:
    before = jax.tree.map(lambda cs, c0: jnp.concatenate([cs[1:], c0]), carries, first)
  else:
    before = jax.tree.map(lambda cs, c0: jnp.concatenate([c0, cs[:-1]]), carries, first)
  read = protocol.reader(cell, params, carry, xs[0])
  gates: Any = ()
  if read is not None and not with_gates:
    ys = jax.vmap(read, (None, 0, 0))(params, carries, xs)
  else:
    # Every step's input carry is known now: the steps themselves, all at once.
    _, ys, gates = jax.vmap(parts.recur, (None, 0, 0))(params, before, parts.project(params, xs))
  if valid is not None:
    ys = loop.zero_past(valid, ys)
  return final, ys, gates if with_gates else ()


def _prepare(
  cell: Any, params: Params, xs: Any, carry: Carry, lengths: Any, unroll: Any = 1
) -> tuple[Array, Carry, Array | None]:
  """Check every argument at trace time; fill in the default carry.

  The expected parameters, carry and step results are derived from the cell itself
  (:mod:`gatejax._validate`), so any cell is checked as a built-in one.
  """
  _validate.cell(cell)
  xs = _validate.sequence(xs)
  _validate.params(cell, params, input_size=xs.shape[-1])
  _validate.unroll(unroll)
  batch_shape = xs.shape[1:-1]
  dtype = jnp.result_type(xs, *jax.tree.leaves(params))
  if carry is None:
    carry = cell.initial_carry(batch_shape, dtype)
  else:
    _validate.carry(cell, carry, batch_shape, dtype)
  _validate.step(cell, params, carry, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype), batch_shape)
  if lengths is not None:
    lengths = _validate.lengths(lengths, batch_shape, xs.shape[0])
  return xs, carry, lengths


def scan(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
  unroll: int | bool = 1,
  impl: str = "auto",
  remat: int | bool | None = None,
  matmul_dtype: DTypeLike | None = None,
  block: int | None = None,
  options: ScanOptions | None = None,
) -> tuple[Carry, Float[Array, "time *batch hidden"]]:
  r"""Run ``cell`` over a time-major sequence; jit-compiled, equal to a loop over ``cell.step``.

  .. math:: (c_t, y_t) = \mathrm{step}(\theta, c_{t-1}, x_t), \quad t = 1 \dots T

  Any cell runs here (:mod:`gatejax.protocol`): a built-in one or a user's value with
  ``hidden_size``, ``init``, ``initial_carry`` and ``step``. What the cell offers beyond
  those (the ``project``/``recur`` split, a ``split`` for the hand-written VJP, a
  ``affine``) makes it faster, never different.

  Args:
    cell: a cell, e.g. from :func:`gatejax.gru`.
    params: the cell's parameters, from ``cell.init``.
    xs: inputs of shape ``(time, *batch, input_size)``, floating point.
    carry: the initial carry; ``None`` gives ``cell.initial_carry(batch, dtype)`` in
      the dtype the step computes in (the result type of ``xs`` and ``params``).
    lengths: integer array of shape ``batch``, each in ``[0, time]``; sequences are
      right-padded. Steps at ``t >= length`` leave the carry unchanged and output zeros;
      what the padding holds (NaN included) reaches neither the outputs nor any gradient.
    reverse: read each sequence from its last valid step back to its first;
      ``ys[t]`` is still the output at input position ``t``.
    unroll, impl, remat, matmul_dtype, block: how the sequence is computed; see
      :class:`ScanOptions`.
    options: all of those in one :class:`ScanOptions` (then leave the keywords out).

  Returns:
    ``(carry, ys)``: each sequence's carry after its last valid step, and the
    outputs of shape ``(time, *batch, hidden_size)``.

  Raises:
    TypeError: ``xs`` is not floating point, ``lengths`` is not integer, the carry or
      the parameters have the wrong structure or dtype, or the cell's ``step`` disagrees
      with its own ``initial_carry``.
    ValueError: a shape, a length or an option is wrong; the message names it.

  Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) of a call to ``scan`` picks
  the autodiff implementation under ``impl="auto"``. Two cases cannot be told from reverse
  mode when ``scan`` is traced, and need ``impl="autodiff"``: ``jax.linearize`` (it traces
  as ``jax.grad`` does, but its linear map runs forward), and a function that is jitted
  *before* it is differentiated in forward mode.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.lstm(16)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jnp.ones((10, 2, 4))                 # time 10, batch 2
    >>> carry, ys = gj.scan(cell, params, xs, lengths=jnp.array([10, 3]))
    >>> ys.shape, carry.h.shape
    ((10, 2, 16), (2, 16))
    >>> bool((ys[3:, 1] == 0).all())            # past sequence 1's length
    True
  """
  options = resolve_options(
    options, impl=impl, remat=remat, matmul_dtype=matmul_dtype, block=block, unroll=unroll
  )
  carry, ys, _ = _checked_run(cell, params, xs, carry, lengths, False, reverse, options)
  return carry, ys


def scan_with_gates(
  cell: Any,
  params: Params,
  xs: Float[Array, "time *batch input"],
  *,
  carry: Carry | None = None,
  lengths: Int[Array, "*batch"] | None = None,
  reverse: bool = False,
  unroll: int | bool = 1,
  impl: str = "auto",
  remat: int | bool | None = None,
  matmul_dtype: DTypeLike | None = None,
  block: int | None = None,
  options: ScanOptions | None = None,
) -> tuple[Carry, Float[Array, "time *batch hidden"], Any]:
  """:func:`scan` that also returns every step's gate activations, time first.

  The gates come from ``cell.recur``, the same function the plain scan runs:
  :class:`~gatejax.cells.GRUGates`, :class:`~gatejax.cells.LSTMGates`, or ``()``
  for the RNN and for a cell without ``recur``, each leaf of shape
  ``(time, *batch, hidden)``. At padded steps (``t >= lengths``) they are what the cell
  would compute from the held carry and a zero input (the padding itself never enters);
  mask them out before taking statistics. The
  keyword options are :func:`scan`'s; gradients flow through the gates too.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> cell = gj.gru(8)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> _, ys, gates = gj.scan_with_gates(cell, params, jnp.ones((5, 2)))
    >>> gates.z.shape
    (5, 8)
  """
  options = resolve_options(
    options, impl=impl, remat=remat, matmul_dtype=matmul_dtype, block=block, unroll=unroll
  )
  return _checked_run(cell, params, xs, carry, lengths, True, reverse, options)


_FORWARD_MODE = "forward-mode autodiff"


def _checked_run(
  cell: Any,
  params: Params,
  xs: Any,
  carry: Carry,
  lengths: Any,
  with_gates: bool,
  reverse: bool,
  options: ScanOptions,
) -> tuple[Carry, Array, Any]:
  """Check the arguments of :func:`scan`/:func:`scan_with_gates`, then run :func:`_run`."""
  xs, carry, lengths = _prepare(cell, params, xs, carry, lengths, options.unroll)
  dtype = jax.tree.leaves(carry)[0].dtype if jax.tree.leaves(carry) else xs.dtype
  if options.matmul_dtype is not None and jnp.dtype(options.matmul_dtype) == jnp.dtype(dtype):
    options = dataclasses.replace(options, matmul_dtype=None)
  run = partial(
    _run, cell, params, xs, carry, lengths, reverse=bool(reverse), with_gates=with_gates
  )
  try:
    return run(options=options)
  except TypeError as e:
    # A custom VJP has no forward mode. Under jax.jvp/jacfwd/linearize the call raises at
    # trace time; "auto" then runs JAX's own autodiff, which has both modes.
    if _FORWARD_MODE not in str(e) or options.impl not in ("auto", "fused"):
      raise
    if options.impl == "fused":
      raise TypeError(
        'impl="fused" has a hand-written reverse-mode derivative only; for forward-mode '
        '(jax.jvp, jax.jacfwd, jax.linearize) pass impl="autodiff" or "auto"'
      ) from None
    return run(options=dataclasses.replace(options, impl="autodiff"))


# ---------------------------------------------------------------------------
# Stacks: several layers, optionally bidirectional
# ---------------------------------------------------------------------------


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
  options: ScanOptions | None = None,
) -> tuple[tuple[Carry, ...], Float[Array, "time *batch features"]]:
  """Run a :class:`Stack`: each layer through :func:`scan`, layer ``k + 1`` reading layer ``k``.

  A bidirectional layer runs a forward scan and a ``reverse=True`` scan (both honouring
  ``lengths``) and concatenates their outputs along the feature axis, forward first.

  Args:
    net: from :func:`stack`.
    params: from ``net.init``: a tuple over layers.
    xs: inputs ``(time, *batch, input_size)``.
    carry: initial carries as ``net.initial_carry`` lays them out, or ``None`` for zeros.
    lengths: as in :func:`scan`.
    reverse: run a unidirectional stack right to left (not allowed when bidirectional).
    unroll, impl, remat, matmul_dtype, block: as in :func:`scan`, for every layer.
    options: all of those in one :class:`ScanOptions`, for every layer.

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
    options, impl=impl, remat=remat, matmul_dtype=matmul_dtype, block=block, unroll=unroll
  )
  run = partial(scan, options=options)
  carries = []
  for k, (cell, layer_params) in enumerate(zip(net.layers, params, strict=True)):
    layer_carry = None if carry is None else carry[k]
    try:
      if net.bidirectional:
        _validate.pair("params", k, layer_params)
        if layer_carry is not None:
          _validate.pair("carry", k, layer_carry)
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
