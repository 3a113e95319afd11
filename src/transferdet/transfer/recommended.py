"""What ``rank`` recommends unless told otherwise (its first metric, on its default layer) and what
``select`` screens with: one place, set by evidence.

The shelf benchmark's pre-registered rule (:mod:`~transferdet.bench.shelf_rule`, committed before its
new fine-tunes ran) picked TLogME (the TMOD paper's LogME on the box classes and on the box
coordinates, averaged) on ``pyramid/wm32`` (the Det-LogME idea, Wang et al. 2024: each box read from
the FPN level its size selects, each level's rows width-matched to 32 dimensions). It ordered 0.567
of 150 within-architecture pairs as fine-tuning did (averaged over background RoIs off and on).
That is the rule's winner, not a ranker that works: its interval holds chance and its gain over
k-NN holds zero, and fine-tuning's own two trials ordered those pairs no better than a coin
(docs/results.md, "Within one architecture"). tests/test_real_benchmark.py checks that these two
names are the rule's winner on the committed store.
"""

from __future__ import annotations

METRIC = "tlogme"
LAYER = "pyramid/wm32"
