"""The churn model's quality check says how the model compares with ranking by recency alone, in words that fit."""

from quality.checks.predict import churn_problems

ROW = {"auc": 0.5, "min_auc": 0.6, "calibration_error": 0.02, "max_calibration_error": 0.1, "recency_auc": 0.59,
       "min_gain_over_recency": 0.01}


def test_a_model_worse_than_recency_is_below_it_and_a_small_gain_is_only_that():
    assert churn_problems(ROW | {"auc_gain_over_recency": -0.09}) == [
        "held-out AUC 0.500 is below predict.min_auc 0.6",
        "held-out AUC 0.500 is 0.090 below ranking by recency alone (0.590); the model adds nothing over recency "
        "(margin 0.01)"]
    assert churn_problems(ROW | {"auc": 0.6, "recency_auc": 0.595, "auc_gain_over_recency": 0.005}) == [
        "held-out AUC 0.600 is only +0.005 over ranking by recency alone (0.595); the model adds nothing over "
        "recency (margin 0.01)"]
    assert churn_problems(ROW | {"auc": 0.7, "auc_gain_over_recency": 0.11}) == []
