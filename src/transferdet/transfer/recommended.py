"""What ``rank`` recommends unless told otherwise (its first metric, on its default layer) and what
``select`` screens with: one place, set by evidence.

The shelf benchmark's pre-registered rule (:mod:`~transferdet.bench.shelf_rule`, committed before its
new fine-tunes ran) picks the ranker within one architecture; once its store is complete,
tests/test_real_benchmark.py checks that these two names are the rule's winner. Until then they are
the earlier default: TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML
2022) on c5, the metric that ordered the real benchmark's sources best among the metrics when it was
chosen (docs/results.md), though the checkpoint card ordered them better still.
"""

from __future__ import annotations

METRIC = "transrate"
LAYER = "c5"
