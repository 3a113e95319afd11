"""Transferability on detection: per-box features, their cache, and ranking backbones."""
