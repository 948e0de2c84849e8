"""Metrics for the three levels: the paper's table (Ferreira et al. 2018, section 4) and more.

scikit-learn computes precision, recall, F1 and accuracy (``classification``). ``ranking`` adds
what scikit-learn lacks or computes many times slower at catalogue scale: top-k accuracy, P@k/R@k,
per-label and micro AP, F1-optimal thresholds. ``hierarchical`` scores predictions against the
category tree (hP/hR/hF; a prediction may stop at the category); ``calibration`` measures whether
the probabilities can be trusted (ECE, Brier, log loss) and fits temperature scaling. ``report``
assembles the paper's table; ``checks`` validates every input up front, naming the offending
argument, row and column. Every function takes the model's *probabilities*, so one set of
predictions feeds thresholded metrics (OP/OR/OF1, CP/CR/CF1) and threshold-free ones (top-k
accuracy, P@k, AP/mAP).

Conventions, all as in scikit-learn unless said otherwise:

* Single-label levels (``category``, ``subcategory``): ``y_true`` is class indices ``(N,)`` or
  one-hot ``(N, C)``; the prediction is the arg-max of ``y_score`` ``(N, C)``. Every one of the
  ``C`` columns is a class (``labels=range(C)``): a class absent from ``y_true`` has recall
  ``zero_division``, precision 0 if it was predicted, and takes part in the macro averages.
* ``zero_division`` (``0.0``, ``1.0`` or ``np.nan``) is the value of a ratio whose denominator
  is 0; NaN values are left out of averages.
* Attributes (multi-label): ``y_true`` is multi-hot ``(N, A)``; an attribute is predicted when
  its score is *at or above* the threshold (as ``LabelSpace.decode_attributes``).
"""
from fashion_hier.metrics.calibration import (
    ReliabilityCurve,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    reliability_curve,
)
from fashion_hier.metrics.checks import LEVELS
from fashion_hier.metrics.classification import accuracy, classification_prf, hierarchy_metrics, multilabel_prf
from fashion_hier.metrics.hierarchical import hierarchical_prf
from fashion_hier.metrics.ranking import average_precision, precision_recall_at_k, top_k_accuracy, tune_thresholds
from fashion_hier.metrics.selective import (
    AccuracyCoverage,
    accuracy_coverage_curve,
    confidence_for_accuracy,
    coverage_at_accuracies,
)
from fashion_hier.metrics.report import (
    ATTRIBUTE_KEYS,
    HIERARCHY_KEYS,
    SINGLE_LABEL_KEYS,
    hierarchical_report,
    per_class_report,
)

__all__ = [
    "LEVELS", "SINGLE_LABEL_KEYS", "ATTRIBUTE_KEYS", "HIERARCHY_KEYS",
    "hierarchical_report", "classification_prf", "multilabel_prf", "accuracy", "top_k_accuracy",
    "precision_recall_at_k", "average_precision", "hierarchy_metrics", "per_class_report", "tune_thresholds",
    "hierarchical_prf", "expected_calibration_error", "reliability_curve", "ReliabilityCurve", "brier_score",
    "log_loss", "fit_temperature", "apply_temperature", "AccuracyCoverage", "accuracy_coverage_curve",
    "confidence_for_accuracy", "coverage_at_accuracies",
]
