"""The churn model's calibration folds (assets/predict/churn.py: fit_churn_model) must not follow the row order.

Training rows come in customer_id order, and member numbers follow the order in which customers joined, so a shop's
rows can run group by group. With unshuffled folds, a trial's Youzan export (card numbers VIP880001.. issued group by
group) got a model that gave every customer the same churn risk (held-out AUC 0.500, 100% of customers at risk)."""

import numpy as np
from sklearn.metrics import roc_auc_score

from assets.predict.churn import fit_churn_model

# Four groups of customers, as that export had them: mother-and-baby, snacks, fresh-food families, occasional buyers.
BASKET = np.array([320.0, 95.0, 470.0, 95.0])  # average basket value
ORDERS = np.array([5.4, 7.1, 8.4, 1.5])  # orders so far
CHURN = np.array([0.5, 0.4, 0.3, 0.85])  # share with no order in the next horizon
SIZES = [400, 450, 350, 300]


def customers(rng: np.random.Generator, in_group_order: bool) -> tuple[np.ndarray, np.ndarray]:
    group = np.repeat(np.arange(4), SIZES)
    features = np.column_stack([BASKET[group] * rng.lognormal(0, 0.3, len(group)),
                                rng.poisson(ORDERS[group]) + 1.0])
    labels = (rng.random(len(group)) < CHURN[group]).astype(np.int8)
    if not in_group_order:
        order = rng.permutation(len(group))
        features, labels = features[order], labels[order]
    return features, labels


def test_rows_in_group_order_still_give_a_model_that_ranks_customers():
    aucs, flat = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        train_x, train_y = customers(rng, in_group_order=True)  # as seeded_rows hands them over
        later_x, later_y = customers(rng, in_group_order=False)
        risk = fit_churn_model(train_x, train_y, seed=42).predict_proba(later_x)[:, 1]
        aucs.append(roc_auc_score(later_y, risk))
        flat.append(len(np.unique(risk.round(4))) == 1)
    # Without shuffled folds, seeds 1 and 5 give one risk for everyone (AUC 0.500) and the mean AUC is about 0.55.
    assert not any(flat), f"one churn risk for every customer with data seeds {[s for s, f in enumerate(flat) if f]}"
    assert min(aucs) > 0.6, f"held-out AUCs {np.round(aucs, 3).tolist()}"
