"""Conversion to and from PyTorch and Flax (placeholder, filled by the interop work)."""
