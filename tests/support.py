"""Helpers shared by the test files."""

import os

import pytest


def require_torch():
  """Import torch, or skip; in CI (``GATEJAX_REQUIRE_TORCH=1``) a missing torch fails."""
  if os.environ.get("GATEJAX_REQUIRE_TORCH") == "1":
    import torch

    return torch
  return pytest.importorskip("torch")
