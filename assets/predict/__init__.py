"""Predictive layer: churn risk, next-category recommendations and lifetime value per customer, judged on time they
never saw.

Published in the `predict` schema (documented in warehouse/README.md), refreshed with every run:

Churn risk -- the probability that a customer makes no purchase in the next `predict.horizon_days` (H) days.
- Time split, no leakage. With `end` the midnight after the last order day, the *training cutoff* is end - 2H and the
  *evaluation cutoff* end - H. Features as of a cutoff come only from orders before it (`churn_features` joins each
  cutoff to the orders before it and aggregates nothing else); labels come only from the H days after it. The
  model trained at the training cutoff (labels: the window up to the evaluation cutoff) is judged on the evaluation
  window [end - H, end), which it never saw (every customer up to EVAL_SAMPLE, a seeded sample beyond): AUC,
  Brier score and calibration are recorded in `predict.churn_model_runs` and `predict.churn_calibration`.
- The published `predict.churn_risk` comes from the same recipe refitted one horizon later (features as of the
  evaluation cutoff, labels from the evaluation window) and applied to features as of `end`: the freshest
  behaviour, with the held-out figures as the honest estimate of how well the recipe ranks.
- Model: scikit-learn HistGradientBoostingClassifier with early stopping, calibrated by CalibratedClassifierCV
  (isotonic, or sigmoid below ISOTONIC_FROM training rows; fitted on a holdout of the training sample from
  HOLDOUT_CALIBRATION_FROM rows, on out-of-fold predictions below). Features are behavioural (recency, recent and
  overall frequency, gaps between orders and whether they are widening, basket value) plus the profile fields
  (age, income) the shop provides (`profile_features`).

Next-category recommendations -- the `predict.top_n` categories each customer has not bought yet.
- Rules: "customers who bought A also bought B", mined over customers (support, confidence, lift) from
  staging.order_lines, kept above `predict.min_support` and `predict.min_confidence` (`predict.category_rules`).
- Score of an unbought category c for a customer: the sum of ln(lift(a -> c)) over the kept rules from the
  categories a the customer bought. Ties, and customers without rules, fall back on popularity (most customers).
  A category nobody has bought is never recommended.
- Judged on the same held-out window: rules and recommendations from the baskets before the evaluation cutoff;
  a hit when a customer's first purchase of a category in the window is one of the recommendations (hit-rate@N
  over the customers who bought some new category there), against recommending the most popular unbought
  categories (`predict.recommendation_eval`). The published recommendations use every basket.

Customer lifetime value -- expected purchases (days with an order) and spend per customer over the next
`predict.clv_horizon_days` (365) days (`predict.customer_value`, assets/predict/clv.py).
- MBG/NBD for purchases and Gamma-Gamma for spend, fitted by maximum likelihood (scipy) on each customer's summary
  (repeat purchase days, recency, age as a customer, mean repeat spend); fitted again every run on every order,
  as it takes seconds at a million customers (no stored model, no retraining cadence).
- Judged on the same held-out window as churn: refitted on the orders before the evaluation cutoff, its predicted
  purchases in [end - H, end) against the actual ones, by decile (`predict.customer_value_deciles`) and by
  Spearman's correlation beside ranking by past purchase rate (`predict.customer_value_eval`).
- Without order dates the run row says `no_dates` and every value is NULL; with too few repeat buyers,
  `too_few_buyers`.

Retraining cadence (`predict.retrain_every_days`, default 7). Training and judging are the expensive part and
customer behaviour drifts over weeks, not nights, so a nightly run scores with the latest model instead of fitting
a new one while that model's training data ends fewer than `retrain_every_days` days before the current data end,
and retrains otherwise (also when there is no model yet, the feature columns or the model settings changed, the
data now ends earlier than the model's, or the stored model file is missing or altered; 0 trains every run).
A reused model still scores features as of the current data end, so the scores follow the new orders. The run
row records `model_action` (`trained` or `reused`), `model_version` (the run id that trained the model which
scored) and `model_decision` (why); the held-out figures of a reusing run are those of the run that trained.
Co-purchase rules follow the same cadence: a reusing run keeps `predict.category_rules` and its evaluation, and
recommends from the current baskets with them (a category new since the rules were mined is picked by
popularity until the next mining).

The model is kept as a joblib file beside the working database (warehouse/work/<name>.models/), not in a table:
publishing copies every table to the readers' warehouse, and a pickled estimator is neither data for them nor
something any reader should load; the working folder is the pipeline's private state. The run row records the
file's SHA-256, and a file that does not match is never loaded (the run retrains instead).

Sources without order dates (the wide seed table): no past and future to split, so churn is not trained
(`churn_risk` stays NULL, the run row says why) and recommendations are built from every basket without an
evaluation (the evaluation row says why). Nothing fails.

Sources declared without categories (`orders.columns.category: null`): there is nothing to recommend. Churn is
trained as usual; predict.category_rules and predict.next_category are left empty (with their columns), and the run
row of predict.recommendation_eval says status `no_categories`, rules_action `skipped` and why, which the
recommendation check and the report read.
"""
