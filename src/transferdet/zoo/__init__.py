"""A zoo of backbones made offline: pretraining on synthetic source domains."""
