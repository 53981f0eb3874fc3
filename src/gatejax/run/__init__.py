"""Running cells over sequences: one preparation, one plan, one runner per way of computing.

=====================================  ===================================================
module                                 what it holds
=====================================  ===================================================
:mod:`~gatejax.run.loop`               the masked loop over time every runner shares
:mod:`~gatejax.run.prepare`            the one preparation of a call's arguments
:mod:`~gatejax.run.options`            :class:`~gatejax.ScanOptions` and the resolved plan
:mod:`~gatejax.run.fused`              the sequential loop with a hand-written VJP
:mod:`~gatejax.run.associative`        cells affine in their carry, all steps at once
:mod:`~gatejax.run.chunkwise`          cells with their own chunkwise form
:mod:`~gatejax.run.scan`               :func:`~gatejax.scan`, :func:`~gatejax.scan_with_gates`
:mod:`~gatejax.run.stack`              multi-layer and bidirectional stacks
:mod:`~gatejax.run.newton`             :func:`~gatejax.parallel_scan`: Newton's method in time
=====================================  ===================================================
"""

from gatejax.run.newton import NewtonInfo, parallel_scan
from gatejax.run.options import ScanOptions
from gatejax.run.scan import scan, scan_with_gates
from gatejax.run.stack import Bidirectional, Stack, scan_stack, stack

__all__ = [
  "Bidirectional",
  "NewtonInfo",
  "ScanOptions",
  "Stack",
  "parallel_scan",
  "scan",
  "scan_stack",
  "scan_with_gates",
  "stack",
]
