"""Classifier-to-detector distillation (DESIGN.md): the teacher, its training, the loss terms, and
their wiring into torchvision detectors."""
