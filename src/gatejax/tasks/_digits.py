"""Handwritten digits, pixel by pixel: a small, download-free relative of sequential MNIST."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from gatejax.tasks._base import Batch, Task, _Spec, _task, _uniform_int

_PIXELS = 64


def digits(*, split: Literal["train", "test"] = "train") -> Task:
  r"""The 8×8 handwritten digits bundled with scikit-learn, read pixel by pixel.

  Each image of ``sklearn.datasets.load_digits`` (1797 images, 10 classes, 43 writers)
  becomes a sequence of 64 steps of one feature, the pixels in row-major (scanline)
  order scaled from ``0..16`` to ``[0, 1]``: a small, download-free relative of
  pixel-by-pixel MNIST (Le, Jaitly & Hinton 2015). The class is read from the output
  at the last step, so the model must carry what it saw in the first rows across up
  to 63 steps. Loss: softmax cross-entropy; baseline: the uniform prediction,
  :math:`\log 10 \approx 2.303`; metric: accuracy, ``chance`` 1/10.

  The split is deterministic and stratified: within each class, taken in the data
  set's order, every fifth image (positions 4, 9, 14, ...) is a test image, the rest
  are training images (1442 and 355). ``sample`` draws images uniformly, with
  replacement, from the split; ``dataset()`` returns the whole split.

  The images have 64 pixels and no other length: ``sample(..., length=64)`` is the same
  as without ``length``, and any other ``length`` is a ``ValueError``.

  Args:
    split: ``"train"`` or ``"test"``.

  Returns:
    A :class:`~gatejax.tasks.Task` named ``"digits"``: input 1, output 10 (logits),
    readout ``"last"``, classification, targets ``(batch,)`` int32.

  Raises:
    ImportError: scikit-learn is not installed (``pip install 'gatejax[test]'`` or
      ``'gatejax[notebooks]'``).

  Example:
    >>> import jax
    >>> from gatejax import tasks
    >>> task = tasks.digits(split="test")
    >>> batch = task.sample(jax.random.key(0), 8)
    >>> batch.xs.shape, batch.targets.dtype
    ((64, 8, 1), dtype('int32'))
    >>> task.dataset().xs.shape
    (64, 355, 1)
  """
  if split not in ("train", "test"):
    raise ValueError(f'split must be "train" or "test", got {split!r}')
  _load_digits(split)  # fail here, not at the first sample, without scikit-learn
  spec = _Digits(split)
  return _task(
    spec,
    time=_PIXELS,
    input_size=1,
    readout="last",
    baseline=math.log(10),
    chance=0.1,
    dataset=True,
  )


@functools.lru_cache(maxsize=2)
def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError(
      "gatejax.tasks.digits needs scikit-learn, an optional dependency: "
      "pip install 'gatejax[test]' (or 'gatejax[notebooks]')"
    ) from e
  pixels, classes = load_digits(return_X_y=True)
  images = np.asarray(pixels, np.float32) / np.float32(16)
  labels = np.asarray(classes, np.int32)
  position = np.empty(len(labels), np.int64)
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    position[members] = np.arange(len(members))
  is_test = position % 5 == 4
  keep = is_test if split == "test" else ~is_test
  return images[keep], labels[keep]


def _as_batch(pixels: Array, targets: Array) -> Batch:
  return Batch(xs=jnp.transpose(pixels)[..., None], targets=targets, lengths=None)


@dataclasses.dataclass(frozen=True)
class _Digits(_Spec):
  split: str

  name = "digits"

  @property
  def output_size(self) -> int:
    return 10

  def check_length(self, length: int) -> None:
    if length != _PIXELS:
      raise ValueError(
        f"length must be {_PIXELS} for digits (a fixed data set of 8x8 images), got {length}"
      )

  def draw(self, key: PRNGKeyArray, batch_size: int, length: int | None) -> Batch:
    images, labels = _load_digits(self.split)
    index = _uniform_int(jax.random.uniform(key, (batch_size,)), 0, len(labels))
    return _as_batch(jnp.asarray(images)[index], jnp.asarray(labels)[index])

  def dataset(self) -> Batch:
    images, labels = _load_digits(self.split)
    return _as_batch(jnp.asarray(images), jnp.asarray(labels))


#: The factories of this file, collected by :mod:`gatejax.tasks.names`.
FACTORIES = (digits,)
