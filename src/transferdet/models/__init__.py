"""Backbones from any checkpoint, and torchvision detectors over them."""
