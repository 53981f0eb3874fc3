r"""Conversion of cells, parameters and carries to and from PyTorch and Flax linen.

Both libraries compute the same equations as gatejax (PyTorch's gate order, the GRU's
``reset="after"`` candidate); only the storage differs:

=====================  ===================================  ==================================
gatejax                PyTorch (``nn.RNN/GRU/LSTM``)          Flax linen (``GRUCell`` ...)
=====================  ===================================  ==================================
``w_x`` (in, G*H)      ``weight_ih_l{k}.T``                 kernels of ``i*`` Dense layers
``w_h`` (H, G*H)       ``weight_hh_l{k}.T``                 kernels of ``h*`` Dense layers
RNN, LSTM ``b``        ``bias_ih + bias_hh``                bias of ``i`` (RNN), ``h*`` (LSTM)
GRU ``b_x``, ``b_h``   ``bias_ih``, ``bias_hh``             ``ir/iz/in`` biases, ``hn`` bias
LSTM carry             ``(h_n, c_n)``, layer-major          ``(c, h)``: note the order
=====================  ===================================  ==================================

The GRU keeps two biases because its ``reset="after"`` candidate
:math:`\phi(x W_{xn} + b_{xn} + r \odot (h W_{hn} + b_{hn}))` reads ``b_hn`` inside the reset
product; the ``r`` and ``z`` biases only ever appear summed. A multi-layer or bidirectional
PyTorch module becomes a :class:`~gatejax.run.stack.Stack` run by
:func:`~gatejax.scan_stack`, with a :class:`~gatejax.run.stack.Bidirectional`
``(forward, backward)`` pair per layer.

gatejax is time-major (``(time, *batch, input)``); a ``batch_first=True`` module converts
to the same parameters (the flag changes only its input layout), so transpose its inputs.
torch is optional: it is imported only inside the functions that need it, and Flax linen
likewise, so ``import gatejax`` stays light.

Example:
  >>> import jax, jax.numpy as jnp, gatejax as gj
  >>> cell = gj.gru(4)
  >>> params = cell.init(jax.random.key(0), input_size=3)
  >>> module, variables = gj.interop.to_flax_linen(cell, params)
  >>> x = jnp.ones((2, 3))
  >>> h, _ = module.apply(variables, jnp.zeros((2, 4)), x)
  >>> bool(jnp.allclose(h, cell.step(params, jnp.zeros((2, 4)), x)[0], atol=1e-6))
  True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from gatejax.cells import Cell, GRUParams, LSTMParams, LSTMState, RNNParams, gru, lstm, rnn
from gatejax.cells.minimal import MGUParams, mgu
from gatejax.run.stack import Bidirectional, Stack, stack

__all__ = [
  "carry_from_flax_linen",
  "carry_from_torch",
  "carry_to_flax_linen",
  "carry_to_torch",
  "from_flax_linen",
  "from_torch",
  "to_flax_linen",
  "to_torch",
]

Params = Any
Carry = Any

# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


def _check_torch_module(module: Any) -> None:
  import torch

  if not isinstance(module, torch.nn.RNN | torch.nn.GRU | torch.nn.LSTM):
    raise TypeError(
      f"module must be a torch.nn.RNN, torch.nn.GRU or torch.nn.LSTM, got {type(module).__name__}"
    )
  if getattr(module, "proj_size", 0):
    raise ValueError(
      f"module has proj_size={module.proj_size}; LSTMs with projections are not supported"
    )


def _from_tensor(t: Any) -> Array:
  import torch

  t = t.detach().cpu()
  if t.dtype == torch.bfloat16:  # numpy has no bfloat16: go through float32, exactly
    return jnp.asarray(t.float().numpy()).astype(jnp.bfloat16)
  return jnp.asarray(t.numpy())


def _to_tensor(a: Array) -> Any:
  import torch

  a = jnp.asarray(a)
  if a.dtype == jnp.bfloat16:
    return torch.from_numpy(np.array(a.astype(jnp.float32))).to(torch.bfloat16)
  return torch.from_numpy(np.array(a))


def _torch_cell(module: Any) -> Cell:
  mode = module.mode
  H = module.hidden_size
  if mode == "RNN_TANH":
    return rnn(H, activation=jnp.tanh)
  if mode == "RNN_RELU":
    return rnn(H, activation=jax.nn.relu)
  if mode == "GRU":
    return gru(H, reset="after")
  return lstm(H)


def _torch_layer_params(module: Any, kind: str, layer: int, reverse: bool) -> Params:
  suffix = f"_l{layer}" + ("_reverse" if reverse else "")
  w_ih = getattr(module, "weight_ih" + suffix)
  w_x = _from_tensor(w_ih).T
  w_h = _from_tensor(getattr(module, "weight_hh" + suffix)).T
  if module.bias:
    b_ih = _from_tensor(getattr(module, "bias_ih" + suffix))
    b_hh = _from_tensor(getattr(module, "bias_hh" + suffix))
  else:
    b_ih = b_hh = jnp.zeros((w_ih.shape[0],), w_x.dtype)
  if kind == "gru":
    return GRUParams(w_x=w_x, w_h=w_h, b_x=b_ih, b_h=b_hh)
  if kind == "lstm":
    return LSTMParams(w_x=w_x, w_h=w_h, b=b_ih + b_hh)
  return RNNParams(w_x=w_x, w_h=w_h, b=b_ih + b_hh)


def from_torch(module: Any) -> tuple[Cell | Stack, Params]:
  r"""A gatejax cell (or stack) and its parameters from a ``torch.nn.RNN``, ``GRU`` or ``LSTM``.

  The weights are copied, transposed (:math:`W_x` = ``weight_ih.T``, :math:`W_h` =
  ``weight_hh.T``), in PyTorch's own gate order. The RNN and LSTM biases are summed
  (``bias_ih + bias_hh``); the GRU keeps them apart (``b_x = bias_ih``, ``b_h = bias_hh``).
  A module built with ``bias=False`` gets zero biases. ``dropout`` acts only in training
  and is ignored; ``batch_first`` changes only the input layout (gatejax is time-major, so
  transpose batch-first inputs); ``proj_size > 0`` is not supported.

  Args:
    module: a ``torch.nn.RNN`` (``nonlinearity`` ``"tanh"`` or ``"relu"``), ``torch.nn.GRU``
      or ``torch.nn.LSTM``.

  Returns:
    ``(cell, params)`` for a one-layer, one-direction module, to run with
    :func:`~gatejax.scan`; otherwise ``(net, params)`` with ``net`` a
    :class:`~gatejax.run.stack.Stack` and ``params`` a tuple over layers
    (:class:`~gatejax.run.stack.Bidirectional` pairs if bidirectional), to run with
    :func:`~gatejax.scan_stack`. The parameters keep the module's dtype.

  Raises:
    TypeError: ``module`` is not one of the three PyTorch recurrent modules.
    ValueError: an LSTM has ``proj_size > 0``.

  Example:
    >>> import jax.numpy as jnp, gatejax as gj
    >>> import pytest; torch = pytest.importorskip("torch")  # torch is optional
    >>> module = torch.nn.GRU(input_size=3, hidden_size=5)
    >>> cell, params = gj.interop.from_torch(module)
    >>> xs = torch.randn(7, 2, 3)  # (time, batch, input)
    >>> ys_torch, _ = module(xs)
    >>> _, ys = gj.scan(cell, params, jnp.asarray(xs.numpy()))
    >>> float(jnp.abs(ys - jnp.asarray(ys_torch.detach().numpy())).max()) < 1e-5
    True
  """
  _check_torch_module(module)
  cell = _torch_cell(module)
  kind = cell.kind
  layers = []
  for k in range(module.num_layers):
    forward = _torch_layer_params(module, kind, k, reverse=False)
    if module.bidirectional:
      layers.append(Bidirectional(forward, _torch_layer_params(module, kind, k, reverse=True)))
    else:
      layers.append(forward)
  if module.num_layers == 1 and not module.bidirectional:
    return cell, layers[0]
  return stack(cell, num_layers=module.num_layers, bidirectional=module.bidirectional), tuple(
    layers
  )


def _as_stack(net: Cell | Stack, params: Params, name: str = "params") -> tuple[Stack, tuple]:
  """A lone cell as a one-layer stack, so that one code path serves both."""
  if isinstance(net, Cell):
    return stack(net), (params,)
  if isinstance(net, Stack):
    if not isinstance(params, list | tuple) or len(params) != len(net.layers):
      raise ValueError(
        f"{name} must be a tuple of {len(net.layers)} layer entries for this stack, "
        f"got {type(params).__name__}"
      )
    return net, tuple(params)
  raise TypeError(f"net must be a gj.Cell or a gj.Stack, got {type(net).__name__}")


def _torch_mode_of(cell: Cell) -> str:
  """PyTorch's name for ``cell``, or a ValueError saying which option PyTorch lacks."""
  o = cell.options
  if cell.kind == "rnn":
    if o.activation is jnp.tanh:
      return "RNN_TANH"
    if o.activation is jax.nn.relu:
      return "RNN_RELU"
    raise ValueError(
      f"activation must be jnp.tanh or jax.nn.relu for torch.nn.RNN, got {o.activation!r}"
    )
  if cell.kind == "gru" and o.reset != "after":
    raise ValueError(f'reset must be "after" for torch.nn.GRU, got {o.reset!r}')
  if o.gate_fn is not jax.nn.sigmoid:
    raise ValueError(f"gate_fn must be jax.nn.sigmoid for PyTorch, got {o.gate_fn!r}")
  if o.activation is not jnp.tanh:
    raise ValueError(f"activation must be jnp.tanh for PyTorch, got {o.activation!r}")
  return cell.kind.upper()


def to_torch(net: Cell | Stack, params: Params) -> Any:
  """A ``torch.nn.RNN``, ``GRU`` or ``LSTM`` that computes what ``net`` does with ``params``.

  The inverse of :func:`from_torch`: ``weight_ih = w_x.T``, ``weight_hh = w_h.T``; the GRU's
  ``b_x`` and ``b_h`` become ``bias_ih`` and ``bias_hh``, and the single RNN and LSTM bias
  goes to ``bias_ih`` with ``bias_hh`` zero (only their sum matters). The module is
  time-major (``batch_first=False``), in the dtype of the parameters.

  Args:
    net: a :class:`~gatejax.cells.Cell` or a :class:`~gatejax.run.stack.Stack` whose layers
      are all of one kind and hidden size, with PyTorch's nonlinearities (sigmoid gates,
      tanh; ``jax.nn.relu`` also for the RNN) and ``reset="after"`` for the GRU.
    params: the parameters of ``net`` (for a stack, the tuple over layers).

  Returns:
    A ``torch.nn`` module in evaluation mode.

  Raises:
    ValueError: ``net`` uses options PyTorch has no counterpart for, or its layers differ.

  Example:
    >>> import jax, jax.numpy as jnp, gatejax as gj
    >>> import pytest; torch = pytest.importorskip("torch")  # torch is optional
    >>> net = gj.stack(gj.lstm(4), num_layers=2)
    >>> params = net.init(jax.random.key(0), input_size=3)
    >>> module = gj.interop.to_torch(net, params)
    >>> module.num_layers, module.hidden_size
    (2, 4)
  """
  import torch

  net, layer_params = _as_stack(net, params)
  first = net.layers[0]
  mode = _torch_mode_of(first)
  for k, cell in enumerate(net.layers):
    if cell.kind != first.kind or cell.hidden_size != first.hidden_size:
      raise ValueError(
        f"net layers must share one kind and hidden_size for PyTorch; layer {k} is a "
        f"{cell.kind} of {cell.hidden_size}, layer 0 a {first.kind} of {first.hidden_size}"
      )
    if _torch_mode_of(cell) != mode:
      raise ValueError(f"net layer {k} has other options than layer 0; PyTorch needs one")
  directions = [("", "forward"), ("_reverse", "backward")][: net.num_directions]
  flat = []
  for k, p in enumerate(layer_params):
    for suffix, side in directions:
      if net.bidirectional:
        if not isinstance(p, Bidirectional):
          raise TypeError(f"params[{k}] must be gj.Bidirectional, got {type(p).__name__}")
        flat.append((f"_l{k}{suffix}", getattr(p, side)))
      else:
        flat.append((f"_l{k}", p))
  p0 = flat[0][1]
  dtype = _to_tensor(p0.w_x).dtype
  kwargs = dict(
    input_size=int(p0.w_x.shape[0]),
    hidden_size=first.hidden_size,
    num_layers=len(net.layers),
    bidirectional=net.bidirectional,
    dtype=dtype,
  )
  if first.kind == "rnn":
    module = torch.nn.RNN(nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kwargs)
  else:
    module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[first.kind](**kwargs)
  with torch.no_grad():
    for suffix, p in flat:
      getattr(module, "weight_ih" + suffix).copy_(_to_tensor(p.w_x.T))
      getattr(module, "weight_hh" + suffix).copy_(_to_tensor(p.w_h.T))
      if first.kind == "gru":
        b_ih, b_hh = p.b_x, p.b_h
      else:
        b_ih, b_hh = p.b, jnp.zeros_like(p.b)
      getattr(module, "bias_ih" + suffix).copy_(_to_tensor(b_ih))
      getattr(module, "bias_hh" + suffix).copy_(_to_tensor(b_hh))
  return module.eval()


def carry_from_torch(net: Cell | Stack, hx: Any) -> Carry:
  """PyTorch's state ``h`` (or ``(h, c)`` for the LSTM) as a gatejax carry for ``net``.

  PyTorch stacks the states of all layers and directions on a leading axis of size
  ``num_layers * num_directions`` (index ``layer * num_directions + direction``).

  Args:
    net: the cell or stack returned by :func:`from_torch`.
    hx: ``h_0`` of shape ``(num_layers * num_directions, *batch, hidden)``, or the pair
      ``(h_0, c_0)`` for an LSTM; torch tensors or arrays.

  Returns:
    The carry :func:`~gatejax.scan` (for a cell) or
    :func:`~gatejax.scan_stack` (for a stack) takes.
  """
  if isinstance(net, Cell):
    net_ = stack(net)
  elif isinstance(net, Stack):
    net_ = net
  else:
    raise TypeError(f"net must be a gj.Cell or a gj.Stack, got {type(net).__name__}")
  is_lstm = net_.layers[0].kind == "lstm"
  if is_lstm:
    if not isinstance(hx, list | tuple) or len(hx) != 2:
      raise TypeError(f"hx must be the pair (h_0, c_0) for an LSTM, got {type(hx).__name__}")
    h, c = (_array(a) for a in hx)
  else:
    h, c = _array(hx), None
  expected = len(net_.layers) * net_.num_directions
  if h.ndim < 2 or h.shape[0] != expected or h.shape[-1] != net_.layers[0].hidden_size:
    raise ValueError(
      f"hx must have shape (num_layers * num_directions = {expected}, *batch, hidden_size = "
      f"{net_.layers[0].hidden_size}), got shape {tuple(h.shape)}"
    )
  if c is not None and c.shape != h.shape:
    raise ValueError(
      f"hx[1] (c_0) must have the shape of hx[0] (h_0), {tuple(h.shape)}, got {tuple(c.shape)}"
    )

  def one(index: int) -> Carry:
    return LSTMState(h=h[index], c=c[index]) if c is not None else h[index]

  d = net_.num_directions
  layers = [
    Bidirectional(one(d * k), one(d * k + 1)) if net_.bidirectional else one(k)
    for k in range(len(net_.layers))
  ]
  return layers[0] if isinstance(net, Cell) else tuple(layers)


def carry_to_torch(net: Cell | Stack, carry: Carry) -> Any:
  """A gatejax carry as PyTorch's state: ``h_n``, or ``(h_n, c_n)`` for an LSTM (torch tensors).

  The inverse of :func:`carry_from_torch`; ``carry`` is what :func:`~gatejax.scan`
  or :func:`~gatejax.scan_stack` returns for ``net``.
  """
  import torch

  net_, carries = _as_stack(net, carry, name="carry")
  flat = []
  for k, c in enumerate(carries):
    if net_.bidirectional:
      if not isinstance(c, Bidirectional):
        raise TypeError(f"carry[{k}] must be gj.Bidirectional, got {type(c).__name__}")
      flat += [c.forward, c.backward]
    else:
      flat.append(c)
  if net_.layers[0].kind == "lstm":
    return (
      torch.stack([_to_tensor(c.h) for c in flat]),
      torch.stack([_to_tensor(c.c) for c in flat]),
    )
  return torch.stack([_to_tensor(c) for c in flat])


def _array(a: Any) -> Array:
  if type(a).__module__.startswith("torch"):
    return _from_tensor(a)
  return jnp.asarray(a)


# ---------------------------------------------------------------------------
# Flax linen
# ---------------------------------------------------------------------------

_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


def _linen_params(variables: Any) -> Any:
  """The ``params`` collection, whether given whole (``{"params": ...}``) or alone."""
  if hasattr(variables, "keys") and "params" in variables:
    return variables["params"]
  return variables


def from_flax_linen(module: Any, variables: Any) -> tuple[Cell, Params]:
  r"""A gatejax cell and its parameters from a Flax linen recurrent cell and its variables.

  Supported: ``nn.GRUCell`` (to ``gj.gru(reset="after")``), ``nn.LSTMCell`` and
  ``nn.OptimizedLSTMCell`` (same parameter names; to ``gj.lstm``), ``nn.MGUCell`` (to
  ``gj.mgu``, with its ``reset_gate``) and ``nn.SimpleCell`` without ``residual`` (to
  ``gj.rnn``). The module's ``gate_fn`` and ``activation_fn``
  carry over. The per-gate Dense kernels are concatenated in gatejax's gate order; the
  GRU's ``ir``, ``iz``, ``in`` biases become ``b_x`` and its ``hn`` bias the ``n`` block of
  ``b_h`` (linen's ``hr`` and ``hz`` have no bias); the LSTM bias is that of its ``h*`` layers.

  Linen's LSTM carry is ``(c, h)``; gatejax's is ``LSTMState(h, c)``: see
  :func:`carry_from_flax_linen`.

  Args:
    module: the linen cell (only its type, ``features`` and functions are read).
    variables: its variables, ``{"params": ...}``, or the ``params`` collection alone.

  Returns:
    ``(cell, params)``.

  Example:
    >>> import jax, jax.numpy as jnp, flax.linen as nn, gatejax as gj
    >>> module = nn.LSTMCell(features=4)
    >>> x = jnp.ones((2, 3))
    >>> flax_carry = module.initialize_carry(jax.random.key(0), x.shape)
    >>> variables = module.init(jax.random.key(1), flax_carry, x)
    >>> cell, params = gj.interop.from_flax_linen(module, variables)
    >>> (c, h), _ = module.apply(variables, flax_carry, x)
    >>> carry, _ = cell.step(params, gj.interop.carry_from_flax_linen(cell, flax_carry), x)
    >>> bool(jnp.allclose(carry.h, h, atol=1e-6) and jnp.allclose(carry.c, c, atol=1e-6))
    True
  """
  import flax.linen as nn

  p = _linen_params(variables)
  H = getattr(module, "features", 0)
  if isinstance(module, nn.GRUCell):
    cell = gru(H, reset="after", gate_fn=module.gate_fn, activation=module.activation_fn)
    w_x = jnp.concatenate([p["i" + g]["kernel"] for g in _GRU_GATES], axis=-1)
    w_h = jnp.concatenate([p["h" + g]["kernel"] for g in _GRU_GATES], axis=-1)
    b_x = jnp.concatenate([p["i" + g]["bias"] for g in _GRU_GATES])
    b_hn = p["hn"]["bias"]
    b_h = jnp.concatenate([jnp.zeros((2 * H,), b_hn.dtype), b_hn])
    return cell, GRUParams(w_x=w_x, w_h=w_h, b_x=b_x, b_h=b_h)
  if isinstance(module, nn.LSTMCell | nn.OptimizedLSTMCell):
    cell = lstm(H, gate_fn=module.gate_fn, activation=module.activation_fn)
    w_x = jnp.concatenate([p["i" + g]["kernel"] for g in _LSTM_GATES], axis=-1)
    w_h = jnp.concatenate([p["h" + g]["kernel"] for g in _LSTM_GATES], axis=-1)
    b = jnp.concatenate([p["h" + g]["bias"] for g in _LSTM_GATES])
    return cell, LSTMParams(w_x=w_x, w_h=w_h, b=b)
  if isinstance(module, nn.MGUCell):
    cell = mgu(
      H, reset_gate=module.reset_gate, gate_fn=module.gate_fn, activation=module.activation_fn
    )
    w_x = jnp.concatenate([p["if"]["kernel"], p["in"]["kernel"]], axis=-1)
    w_h = jnp.concatenate([p["hf"]["kernel"], p["hn"]["kernel"]], axis=-1)
    b_x = jnp.concatenate([p["if"]["bias"], p["in"]["bias"]])
    # linen's hn has a bias only with the reset gate; without it gatejax's b_hn is zero.
    b_hn = p["hn"]["bias"] if module.reset_gate else jnp.zeros((H,), b_x.dtype)
    return cell, MGUParams(w_x=w_x, w_h=w_h, b_x=b_x, b_hn=b_hn)
  if isinstance(module, nn.SimpleCell):
    if module.residual:
      raise ValueError("module is a SimpleCell with residual=True, which gj.rnn does not compute")
    cell = rnn(H, activation=module.activation_fn)
    return cell, RNNParams(w_x=p["i"]["kernel"], w_h=p["h"]["kernel"], b=p["i"]["bias"])
  raise TypeError(
    "module must be a flax.linen GRUCell, LSTMCell, OptimizedLSTMCell, MGUCell or SimpleCell, "
    f"got {type(module).__name__}"
  )


def to_flax_linen(cell: Cell, params: Params) -> tuple[Any, dict[str, Any]]:
  """A Flax linen cell and its variables that compute what ``cell`` does with ``params``.

  The inverse of :func:`from_flax_linen`: ``gj.gru(reset="after")`` gives ``nn.GRUCell``,
  ``gj.lstm`` gives ``nn.LSTMCell`` (whose variables fit ``nn.OptimizedLSTMCell`` too),
  ``gj.mgu`` gives ``nn.MGUCell`` (with its ``reset_gate``), ``gj.rnn`` gives
  ``nn.SimpleCell``; the cell's ``gate_fn`` and ``activation`` carry over.
  Linen's GRU has no bias on ``hr`` and ``hz``, so the ``r`` and ``z`` blocks of ``b_h`` are
  added to those of ``b_x`` (only their sum enters the equations).

  Args:
    cell: a gatejax cell; a GRU must use ``reset="after"`` (linen has no other).
    params: its parameters.

  Returns:
    ``(module, variables)`` with ``variables = {"params": ...}`` for ``module.apply``.

  Raises:
    ValueError: a GRU with ``reset="before"``.
  """
  import flax.linen as nn

  if not isinstance(cell, Cell):
    raise TypeError(f"cell must be a gj.Cell, got {type(cell).__name__}")
  o = cell.options
  H = cell.hidden_size

  # The module's parameters (and the carry it initialises) in the parameters' own dtype.
  param_dtype = jnp.result_type(*jax.tree.leaves(params))

  def blocks(a: Array, names: tuple[str, ...]) -> dict[str, Array]:
    return dict(zip(names, jnp.split(a, len(names), axis=-1), strict=True))

  if cell.kind == "gru":
    if o.reset != "after":
      raise ValueError(f'reset must be "after" for flax.linen.GRUCell, got {o.reset!r}')
    _expect_params(params, GRUParams)
    w_x, w_h = blocks(params.w_x, _GRU_GATES), blocks(params.w_h, _GRU_GATES)
    b_x, b_h = blocks(params.b_x, _GRU_GATES), blocks(params.b_h, _GRU_GATES)
    p = {}
    for g in _GRU_GATES:
      b = b_x[g] if g == "n" else b_x[g] + b_h[g]
      p["i" + g] = {"kernel": w_x[g], "bias": b}
      p["h" + g] = {"kernel": w_h[g]}
    p["hn"]["bias"] = b_h["n"]
    module = nn.GRUCell(
      features=H, gate_fn=o.gate_fn, activation_fn=o.activation, param_dtype=param_dtype
    )
  elif cell.kind == "lstm":
    _expect_params(params, LSTMParams)
    w_x, w_h = blocks(params.w_x, _LSTM_GATES), blocks(params.w_h, _LSTM_GATES)
    b = blocks(params.b, _LSTM_GATES)
    p = {}
    for g in _LSTM_GATES:
      p["i" + g] = {"kernel": w_x[g]}
      p["h" + g] = {"kernel": w_h[g], "bias": b[g]}
    module = nn.LSTMCell(
      features=H, gate_fn=o.gate_fn, activation_fn=o.activation, param_dtype=param_dtype
    )
  elif cell.kind == "mgu":
    _expect_params(params, MGUParams)
    (wxf, wxn), (whf, whn) = jnp.split(params.w_x, 2, -1), jnp.split(params.w_h, 2, -1)
    bxf, bxn = jnp.split(params.b_x, 2)
    if o.reset_gate:
      p = {"in": {"kernel": wxn, "bias": bxn}, "hn": {"kernel": whn, "bias": params.b_hn}}
    else:  # outside the reset product the two candidate biases are one
      p = {"in": {"kernel": wxn, "bias": bxn + params.b_hn}, "hn": {"kernel": whn}}
    p |= {"if": {"kernel": wxf, "bias": bxf}, "hf": {"kernel": whf}}
    module = nn.MGUCell(
      features=H,
      gate_fn=o.gate_fn,
      activation_fn=o.activation,
      reset_gate=o.reset_gate,
      param_dtype=param_dtype,
    )
  elif cell.kind == "rnn":
    _expect_params(params, RNNParams)
    p = {"i": {"kernel": params.w_x, "bias": params.b}, "h": {"kernel": params.w_h}}
    module = nn.SimpleCell(features=H, activation_fn=o.activation, param_dtype=param_dtype)
  else:
    raise ValueError(
      f"cell must be a gj.rnn, gj.gru, gj.lstm or gj.mgu for flax.linen, got {cell.name}"
    )
  return module, {"params": p}


def _expect_params(params: Any, expected: type) -> None:
  if not isinstance(params, expected):
    raise TypeError(f"params must be {expected.__name__}, got {type(params).__name__}")


def carry_from_flax_linen(cell: Cell, carry: Any) -> Carry:
  """Linen's carry as gatejax's: the LSTM's ``(c, h)`` becomes ``LSTMState(h, c)``; else as is."""
  if cell.kind == "lstm":
    c, h = carry
    return LSTMState(h=h, c=c)
  return carry


def carry_to_flax_linen(cell: Cell, carry: Carry) -> Any:
  """gatejax's carry as linen's: ``LSTMState(h, c)`` becomes ``(c, h)``; else as is."""
  if cell.kind == "lstm":
    return (carry.c, carry.h)
  return carry
