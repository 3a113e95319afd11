"""The baselines a sceptic tries before any transferability metric, as scores of box features.

"How NOT to benchmark your SITE metric" (ICLR 2026) found a fixed ranking by model size and plain
k-NN accuracy hard to beat on the standard transferability benchmark; a linear probe is the cheap
version of the fine-tuning being predicted (Kornblith, Shlens, Le, "Do Better ImageNet Models
Transfer Better?", CVPR 2019, use it as the fixed-feature transfer measure). Both accuracies here
are cross-validated on the boxes (stratified folds, seeded), scikit-learn doing the fitting:

- ``knn_accuracy``: k nearest neighbours under cosine distance, k = 5;
- ``linear_probe_accuracy``: multinomial logistic regression on standardised features, L2 with
  C = 0.01 (box features have about as many dimensions as there are boxes: with C = 1 the fit on
  bccd's MobileNetV2 c5 features, 2,800 x 1,280, had not converged after 300 L-BFGS iterations and
  scored 0.75, against 0.83 with C = 0.01), at most 300 iterations per fold (the warning
  scikit-learn gives when it stops there is not passed on). It costs seconds per model on such
  features (10 s for bccd's), so ``rank`` computes it only when asked; the bench always does.

Model size (parameters) needs the model, not its features: :mod:`transferdet.transfer.rank`
adds it.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from transferdet.metrics._checks import as_features, as_labels

FOLDS = 5
NEIGHBOURS = 5
PROBE_C = 0.01


def _folds(labels: np.ndarray, seed: int) -> StratifiedKFold:
    """Up to :data:`FOLDS` stratified folds, fewer when the smallest class has fewer boxes."""
    return StratifiedKFold(min(FOLDS, int(np.bincount(labels).min())), shuffle=True, random_state=seed)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cross-validated accuracy of a 5-nearest-neighbour classifier (cosine) on the features."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    classifier = KNeighborsClassifier(min(NEIGHBOURS, len(f) // 2), metric="cosine")
    return float(cross_val_score(classifier, f, y, cv=_folds(y, seed)).mean())


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cross-validated accuracy of logistic regression on the standardised features."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(cross_val_score(probe, f, y, cv=_folds(y, seed)).mean())
