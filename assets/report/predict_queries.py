"""The queries behind the report's prediction sections (assets/report/data.py load_predictive): churn risk,
"you may also need" bundles and customer value per detailed segment. `{ids}` is a literal list of segment ids."""

BUNDLE_SIZE = 3  # categories in a segment's "you may also need" bundle

AT_RISK_SQL = """
SELECT s.segment_id, count(*) AS members,
       count(*) FILTER (WHERE t.value_tier_key = 'high_value') AS high_value,
       count(*) FILTER (WHERE t.value_tier_key = 'high_value' AND r.at_risk) AS high_value_at_risk,
       avg(r.churn_risk) FILTER (WHERE t.value_tier_key = 'high_value') AS high_value_mean_risk,
       count(*) FILTER (WHERE r.at_risk) AS at_risk
FROM segments.customer_segments s
JOIN segments.customer_value_tiers t USING (customer_id)
LEFT JOIN predict.churn_risk r USING (customer_id)
WHERE s.segment_id IN {ids} GROUP BY s.segment_id ORDER BY s.segment_id"""

BUNDLE_SQL = """
WITH members AS (SELECT segment_id, count(*) AS members FROM segments.customer_segments GROUP BY segment_id),
picked AS (
    SELECT s.segment_id, n.category, count(*) AS customers
    FROM predict.next_category n JOIN segments.customer_segments s USING (customer_id)
    WHERE s.segment_id IN {ids} GROUP BY ALL)
SELECT p.segment_id, p.category, p.customers, p.customers / m.members AS share,
       row_number() OVER (PARTITION BY p.segment_id ORDER BY p.customers DESC, p.category) AS rank
FROM picked p JOIN members m USING (segment_id)
QUALIFY rank <= {size} ORDER BY p.segment_id, rank"""


# Customers whose expected spend is not a finite number (a Gamma-Gamma fit with q <= 1 has no population mean
# spend) are left out, here and in the facts that prove these figures (sections_predict._segment_value_fact).
SEGMENT_VALUE_SQL = """
SELECT s.segment_id, count(v.expected_spend) AS customers, avg(v.expected_purchases) AS expected_purchases,
       avg(v.expected_spend) AS expected_spend
FROM segments.customer_segments s JOIN predict.customer_value v USING (customer_id)
WHERE s.segment_id IN {ids} AND isfinite(v.expected_spend) AND isfinite(v.expected_purchases)
GROUP BY s.segment_id HAVING count(v.expected_spend) > 0 ORDER BY s.segment_id"""
