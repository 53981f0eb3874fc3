"""How a sequence is run: the user's options, and the one plan made from them.

:class:`ScanOptions` is what a user writes (``impl="auto"``, ``remat=True``, ...); a
:class:`Plan` is what a runner executes: every choice resolved for one cell and one
sequence length (the implementation, the block and ``remat`` segment lengths, the padded
length). :func:`plan` makes it once per call, and the runners read it, never the options.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gatejax import _validate, protocol

__all__ = ["IMPLS", "Plan", "ScanOptions", "plan", "resolve_options"]

#: The values of ``impl`` that :func:`gatejax.scan` takes (see :class:`ScanOptions`).
IMPLS = ("auto", "fused", "autodiff", "associative", "chunkwise")


@dataclasses.dataclass(frozen=True)
class ScanOptions:
  """How a sequence is run: one hashable value, accepted wherever a sequence is run.

  :func:`gatejax.scan`, :func:`gatejax.scan_with_gates`, :func:`gatejax.scan_stack`,
  :class:`gatejax.nnx.Recurrent`, :mod:`gatejax.train` and :mod:`gatejax.analysis` take it
  as ``options=``; it is hashable (a frozen dataclass), so a jitted function can take it as
  a static argument. None of the fields changes a result beyond rounding: they choose how it
  is computed.

  Attributes:
    impl: how the sequence is evaluated and reverse-mode differentiated (the result is
      the same): ``"fused"``, the sequential loop with a hand-written VJP of the whole
      sequence (:mod:`gatejax.run.fused`); ``"autodiff"``, the sequential loop with JAX's
      autodiff; ``"associative"``, all steps at once with ``jax.lax.associative_scan``, for
      a cell affine in its carry (one that offers ``affine``: :func:`gatejax.min_gru`,
      :func:`gatejax.min_lstm`, ...); ``"chunkwise"``, a cell's own chunkwise form
      (``chunkwise``: matmuls within a chunk of ``chunk_size`` steps, the recurrence
      between chunks); ``"auto"`` (default): ``"associative"`` where the cell offers it,
      neither ``remat`` nor ``matmul_dtype`` is set and the backend is not a CPU (where the
      sequential loop is 2-6x faster), else ``"fused"``; ``"autodiff"`` when
      :func:`gatejax.scan` is called under ``jax.jvp`` or ``jax.jacfwd`` (see
      :func:`gatejax.scan` for ``jax.linearize``).
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
    chunk_size: steps per chunk of ``impl="chunkwise"``; ``None`` (default): the cell's own.

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
  chunk_size: int | None = None

  def __post_init__(self) -> None:
    if self.impl not in IMPLS:
      raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")
    remat = self.remat
    bad_int = not isinstance(remat, int) or remat < 1
    if remat is not None and not isinstance(remat, bool) and bad_int:
      raise ValueError(
        f"remat must be None, a bool or an int >= 1 (steps per segment), got {remat!r}"
      )
    for name in ("block", "chunk_size"):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be None or an int >= 1 (steps), got {value!r}")
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
  """``options``, or a :class:`ScanOptions` of the keywords; refuse both at once.

  Raises:
    TypeError: ``options`` is neither ``None`` nor a :class:`ScanOptions` (a dict, say).
    ValueError: both ``options`` and a keyword that differs from its default are given.
  """
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


class Plan(NamedTuple):
  """Every choice of one run resolved: what the runners execute (hashable, a static argument).

  Attributes:
    impl: ``"fused"``, ``"autodiff"``, ``"associative"`` or ``"chunkwise"`` (never ``"auto"``).
    reverse: run from the last valid step back to the first.
    with_gates: also return the gate activations.
    unroll: ``jax.lax.scan``'s ``unroll`` for every loop over time.
    remat: segment length for checkpointing (a multiple of ``block``, shorter than the
      sequence), or ``None`` to keep every step's residuals.
    matmul_dtype: dtype name of the matmul operands (``"bfloat16"``), or ``None``.
    block: steps per block (projection and weight-gradient matmuls), at most the length.
    steps: the sequence's length.
    padded: the length padded to whole blocks (and segments), the steps the loop runs.
    single_block: one block holds the whole (padded) sequence.
    chunk_size: steps per chunk of the chunkwise form, or ``None``.
  """

  impl: str
  reverse: bool
  with_gates: bool
  unroll: int | bool
  remat: int | None
  matmul_dtype: str | None
  block: int
  steps: int
  padded: int
  single_block: bool
  chunk_size: int | None = None


def default_block(steps: int) -> int:
  """Steps per block when the caller names none: 1 on a CPU, the whole sequence elsewhere.

  Measured on a two-core CPU (BENCHMARKS.md): the smallest block is fastest there, since
  every array of a step stays in cache; a GPU pays per kernel launch, so it wants the
  largest matmuls, which one block of the whole sequence gives.
  """
  return 1 if jax.default_backend() == "cpu" else max(steps, 1)


def associative_by_default(cell: Any, options: ScanOptions) -> bool:
  """Whether ``impl="auto"`` evaluates a cell affine in its carry all steps at once.

  Off the CPU, where a sequential step costs a kernel launch: yes. On a CPU a sequential
  step costs tens of nanoseconds and the scan's ``O(T log T)`` work and memory traffic lose:
  measured on two cores, the associative scan took 2.1-6.1x the sequential forward time and
  1.7-4.1x its forward+backward time (minGRU, minLSTM; B, T, H from 64, 100, 32 to 8, 4096,
  64; BENCHMARKS.md). ``remat`` and ``matmul_dtype`` ask for the sequential paths.
  """
  plain = options.remat is None and options.matmul_dtype is None
  return plain and protocol.affine_of(cell) is not None and jax.default_backend() != "cpu"


def plan(options: ScanOptions, cell: Any, steps: int, *, reverse: bool, with_gates: bool) -> Plan:
  """The :class:`Plan` of one run of ``cell`` over ``steps`` steps under ``options``.

  Raises:
    ValueError: ``impl="associative"`` or ``"chunkwise"`` with ``remat`` or ``matmul_dtype``
      (which only the sequential loop has), or for a cell that does not offer that form.
  """
  impl = options.impl
  if impl == "auto":
    impl = "associative" if associative_by_default(cell, options) else "fused"
  if impl in ("associative", "chunkwise"):
    if options.remat is not None or options.matmul_dtype is not None:
      raise ValueError(
        f'impl="{impl}" runs every step of a chunk at once: remat and matmul_dtype do not '
        "apply to it"
      )
    if impl == "chunkwise" and with_gates:
      raise ValueError(
        'impl="chunkwise" computes no per-step gates: run scan_with_gates with impl="fused" '
        'or "autodiff"'
      )
    member = "affine" if impl == "associative" else "chunkwise"
    if getattr(cell, member, None) is None:
      what = "affine in its carry" if impl == "associative" else "with a chunkwise form"
      raise ValueError(
        f'impl="{impl}" needs a cell {what} (one that offers {member}); '
        f"{protocol.describe(cell)} does not"
      )
  block = options.block if options.block is not None else default_block(steps)
  block = max(1, min(block, steps))
  remat = options.remat
  if remat is True:
    remat = max(1, round(steps**0.5))
  remat = remat or None
  if remat is not None:
    # A segment is whole blocks; one as long as the sequence is no segmentation at all.
    remat = -(-max(remat, block) // block) * block
    if remat >= steps:
      remat = None
  unit = remat or block
  padded = -(-steps // unit) * unit if steps else 0
  return Plan(
    impl=impl,
    reverse=bool(reverse),
    with_gates=bool(with_gates),
    unroll=options.unroll,
    remat=remat,
    matmul_dtype=options.matmul_dtype,
    block=block,
    steps=steps,
    padded=padded,
    single_block=block == padded,
    chunk_size=options.chunk_size,
  )
