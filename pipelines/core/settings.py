"""Settings of a shop's config besides its files: value maps, quality thresholds, model, segments, privacy and
predictions. Every class rejects unknown keys (pipelines/core/config.py turns that into "did you mean")."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.core.sources import Strict, TokenMap

# Built-in value maps: the usual English and Chinese spellings (tokens compare upper-cased after trimming). A
# shop's `values:` adds to them unless `values.replace_defaults` is true (docs/configuration.md).
# A gender token mapped to None says "not known": the member loads with no gender, the rest of the profile kept
# (member exports write 未知 or 保密 where a member gave none); any other unlisted token quarantines the row.
DEFAULT_GENDER = {"M": "M", "MALE": "M", "男": "M", "男性": "M", "F": "F", "FEMALE": "F", "女": "F", "女性": "F",
                  "U": None, "UNKNOWN": None, "未知": None, "保密": None, "不详": None}
# STORED_VALUE: a shop's own prepaid member card (储值卡), which Chinese supermarkets and cafés sell; not a bank card.
# TRANSFER: a bank transfer or deposit (对公转账, WooCommerce's "Direct bank transfer"), which trials saw guessed as a
# card from the word "bank".
DEFAULT_PAYMENT_METHODS = ["CARD", "CASH", "MOBILE", "CHEQUE", "STORED_VALUE", "TRANSFER"]
DEFAULT_PAYMENT_ALIASES = {
    # Mobile wallets (花呗 is Alipay's credit line, paid in the Alipay app).
    "ALIPAY": "MOBILE", "WECHAT": "MOBILE", "WECHAT PAY": "MOBILE", "WECHATPAY": "MOBILE",
    "支付宝": "MOBILE", "花呗": "MOBILE", "微信": "MOBILE", "微信支付": "MOBILE",
    # Bank cards; 云闪付 is UnionPay's app, which pays from a linked bank card.
    "UNIONPAY": "CARD", "银联": "CARD", "云闪付": "CARD", "银行卡": "CARD", "信用卡": "CARD", "借记卡": "CARD",
    "储蓄卡": "CARD", "刷卡": "CARD",
    # Cash on delivery is paid in cash to the courier.
    "现金": "CASH", "货到付款": "CASH",
    "支票": "CHEQUE",
    # A trial's till paid 1.2% of its lines by 储值卡, which init guessed was a bank card.
    "储值卡": "STORED_VALUE", "储值": "STORED_VALUE", "会员储值": "STORED_VALUE", "储值卡支付": "STORED_VALUE",
    "预付卡": "STORED_VALUE", "STORED VALUE": "STORED_VALUE", "STORED VALUE CARD": "STORED_VALUE",
    "BANK TRANSFER": "TRANSFER", "DIRECT BANK TRANSFER": "TRANSFER", "BACS": "TRANSFER", "WIRE TRANSFER": "TRANSFER",
    "银行转账": "TRANSFER", "转账": "TRANSFER", "对公转账": "TRANSFER", "公司转账": "TRANSFER", "汇款": "TRANSFER",
}
DEFAULT_CANCELLED_STATUSES = ["CANCELLED", "CANCELED", "VOID", "已取消", "取消", "交易关闭", "已退款", "退款成功"]
# A line's own status (orders.columns.line_status: Youzan 售后状态, Taobao 退款状态) saying it was refunded or returned
# in the end; a refund asked for (退款中) or turned down (退款关闭) leaves the line bought.
DEFAULT_REFUNDED_LINE_STATUSES = ["REFUNDED", "RETURNED", "退款成功", "已退款", "退货成功", "已退货"]
DEFAULT_VALUE_MAPS = {
    "gender": DEFAULT_GENDER,
    "payment_methods": DEFAULT_PAYMENT_METHODS,
    "payment_aliases": DEFAULT_PAYMENT_ALIASES,
    "cancelled_statuses": DEFAULT_CANCELLED_STATUSES,
    "refunded_line_statuses": DEFAULT_REFUNDED_LINE_STATUSES,
}


def _token(value: object) -> str:
    return str(value).strip().upper()


def extend_defaults(default: dict | list, given: object) -> object:
    """The built-in map or list with the shop's entries added; a shop's entry replaces the built-in one with the
    same token (compared as staging compares them: trimmed, upper-cased). Anything else is left to validation."""
    if isinstance(default, dict) and isinstance(given, dict):
        shop_tokens = {_token(token) for token in given}
        return {**{t: v for t, v in default.items() if _token(t) not in shop_tokens}, **given}
    if isinstance(default, list) and isinstance(given, list):
        shop_tokens = {_token(item) for item in given}
        return [item for item in default if _token(item) not in shop_tokens] + given
    return given


class ValueMaps(Strict):
    """How raw codes normalise into the contract's vocabulary."""

    # false: the maps and lists below add to the built-in ones (DEFAULT_VALUE_MAPS); true: they replace them.
    replace_defaults: bool = Field(default=False, strict=True)
    gender: dict[str, Literal["M", "F"] | None] = Field(default_factory=lambda: dict(DEFAULT_GENDER))
    home_owner: TokenMap = Field(default_factory=TokenMap)
    # Accepted payment codes (compared upper-cased); any other code quarantines its row.
    payment_methods: list[str] = Field(default_factory=lambda: list(DEFAULT_PAYMENT_METHODS))
    # Shop spellings that mean an accepted code.
    payment_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PAYMENT_ALIASES))
    # Order statuses that mean the order did not happen (long shape, optional `status` column): its rows are set
    # aside as cancelled.
    cancelled_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_CANCELLED_STATUSES))
    # Line statuses that mean the line was refunded or returned (long shape, optional `line_status` column): the
    # line is set aside, its order keeps the others.
    refunded_line_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUNDED_LINE_STATUSES))
    # Text bands of age or income ("25-34", "1万-2万") are read as numbers by built-in rules
    # (assets/staging/bands.py); these tokens (compared trimmed, upper-cased) name the number of any other band.
    bands: dict[Literal["age", "income"], dict[str, float]] = Field(default_factory=dict)
    # Income as the export states it: yearly, or monthly (月收入), which staging multiplies by 12.
    income_period: Literal["year", "month"] = "year"
    # Customer and order ids are normalised (NFKC, trimmed, invisible characters removed); their case is kept
    # unless ids are known to be case-insensitive, when `upper` or `lower` folds them.
    id_case: Literal["keep", "upper", "lower"] = "keep"
    # Money written with a decimal comma and dots (or spaces) between thousands, as Latin American, European and
    # Indonesian exports write it: 12,50, 1.234,56, R$ 1.234,56, and $ 12.990 for twelve thousand nine hundred and
    # ninety. Amounts and prices are then read only so: 12.50 is no number. Without it, 12.990 reads as 12.99.
    decimal_comma: bool = Field(default=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _extend_built_in_values(cls, data: object) -> object:
        # `replace_defaults` is a strict bool, so only a real `true` skips the merge; any other value is an error.
        if not isinstance(data, dict) or data.get("replace_defaults") is True:
            return data
        given = {key: extend_defaults(default, data[key]) for key, default in DEFAULT_VALUE_MAPS.items()
                 if key in data}
        return {**data, **given}

    @model_validator(mode="after")
    def _aliases_point_at_codes(self) -> ValueMaps:
        accepted = {code.upper() for code in self.payment_methods}
        wrong = sorted(v for v in self.payment_aliases.values() if v.upper() not in accepted)
        if wrong:
            raise ValueError(f"values.payment_aliases: target(s) {wrong} are not in values.payment_methods")
        return self


class QualitySettings(Strict):
    """Thresholds of the quality gate. Row rules quarantine single rows; suite thresholds block whole runs."""

    age_range: tuple[float, float] = (0, 120)
    income_range: tuple[float, float] = (0, 100_000_000)
    max_quantity: float = Field(default=10_000, gt=0)
    max_line_amount: float = Field(default=10_000_000, gt=0)
    # Order timestamps later than the run by more than this are quarantined (files carry local time).
    future_tolerance_hours: float = Field(default=24, ge=0)
    # Order dates before this are quarantined: 1900-01-01 or 0001-01-01 are a system's "no date", not an order.
    min_order_date: date = date(2000, 1, 1)
    # Raw suites: the share of rows that must carry their key columns, else the run is blocked.
    min_key_share: float = Field(default=0.95, ge=0, le=1)
    # Load audit: the share of rows that may be quarantined before the run is blocked.
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1)
    # Staging: the share of ordering customers expected to have a profile row (a warning, not a block).
    min_profile_coverage: float = Field(default=0.9, ge=0, le=1)
    # Above this many distinct categories the run stops before features: a free-text column mapped as the
    # category would make one feature per value (a product table or orders.category_rules is the way out).
    max_categories: int = Field(default=60, ge=1)
    # Isolation forest on per-customer aggregates; flagged customers do not shape the segments.
    outlier_contamination: float = Field(default=0.005, gt=0, le=0.5)
    outlier_seed: int = 42
    # Within this many days of data after the forest was fitted, a run reuses it and scores only the customers
    # whose inputs changed (quality/outliers.py); 0 refits it on every run.
    outlier_refit_every_days: int = Field(default=7, ge=0)
    # Rows handed to Great Expectations at once, shared between the suites validated together (quality/validation.py,
    # VALIDATION_THREADS); keys are hash-partitioned so uniqueness stays exact across batches.
    validation_batch_rows: int = Field(default=2_000_000, ge=1000)

    @field_validator("age_range", "income_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"the range must be [min, max], got {list(value)}")
        return value


class IngestSettings(Strict):
    """How files are picked up."""

    # A file modified less than this many seconds ago may still be being written: it is not read this run (a
    # snapshot source waits for it to settle; a landing day is left pending). 0 reads files at once, for files a
    # finished program wrote (persona generate, a test).
    settle_seconds: float = Field(default=60, ge=0)


class ModelSettings(Strict):
    # A fixed number of segments; leave it out to choose k automatically over k_range.
    k: int | None = Field(default=None, ge=2, le=20)
    # Operations teams need several actionable segments, never two.
    k_range: tuple[int, int] = (3, 8)
    # Business constraint on a candidate k: every segment holds at least this share of customers.
    min_segment_share: float = Field(default=0.05, ge=0, lt=0.5)
    # Actionability: no segment may hold more than this share of customers without a distinctive, well-supported
    # trait (assets/features/traits.py): a catch-all "mainstream" half of the shop is nothing to act on. A candidate
    # k where every segment has a trait is preferred to one that only keeps trait-less segments below this share.
    max_segment_share: float = Field(default=0.4, gt=0, le=1)
    # Bootstrap stability (mean adjusted Rand index between fits on resamples) a candidate k must reach.
    min_stability: float = Field(default=0.75, ge=0, le=1)
    bootstrap_rounds: int = Field(default=3, ge=1, le=20)
    # Customers used to score candidate k (the final model is fitted on everyone).
    selection_sample: int = Field(default=20_000, ge=200)
    # kmeans; minibatch (MiniBatchKMeans) for large data; gmm (Gaussian mixture); auto picks kmeans below
    # minibatch_from customers and minibatch above.
    algorithm: Literal["auto", "kmeans", "minibatch", "gmm"] = "auto"
    minibatch_from: int = Field(default=200_000, ge=1)
    seed: int = 42
    # How the clustered columns are weighed (assets/model/preparation.py; measured in docs/segmentation.md): 0/1
    # flags on their own scale, and each feature family's weight growing with the square root of its column count
    # (balanced), with its column count (columns) or not at all (families); standardised: every column
    # standardised and weighed the same.
    feature_weighting: Literal["families", "balanced", "columns", "standardised"] = "balanced"
    # Feature families used for clustering; each must exist in the features table.
    features: list[Literal["demographics", "categories", "rfm", "payment"]] = Field(
        default_factory=lambda: ["demographics", "categories", "rfm", "payment"]
    )
    # A new cluster keeps the id of the previous model's segment whose centre is nearest (Hungarian matching),
    # unless that centre is further than this, in standard deviations of the current features.
    match_max_distance: float = Field(default=2.0, gt=0)
    # Choosing k (scoring every candidate) is needed far less often than refitting. Within this many days of data
    # (the latest order time) after k was chosen, a run keeps that k, refits from the previous centres and skips
    # the candidate scoring, unless drift is detected; 0 re-chooses k on every run.
    reselect_k_every_days: int = Field(default=7, ge=0)
    # Drift, against the previous run, that makes a run re-choose k within the window: more than this share of
    # the customers in both runs changed segment ...
    drift_max_moved_share: float = Field(default=0.05, gt=0, le=1)
    # ... or the fitted customers' mean distance to their centre (scaled space) rose by more than this fraction.
    drift_max_distance_rise: float = Field(default=0.10, gt=0)

    @field_validator("k_range")
    @classmethod
    def _valid_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 2 <= value[0] <= value[1] <= 20:
            raise ValueError(f"k_range must be [low, high] with 2 <= low <= high <= 20, got {list(value)}")
        return value


class NameOverride(Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class SegmentSettings(Strict):
    # YAML archetype rules used to name segments; default: the built-in assets/segments/archetypes.yaml.
    archetypes_file: str | None = None
    # Names chosen by people, keyed by stable segment id; they survive every refresh.
    name_overrides: dict[int, NameOverride] = Field(default_factory=dict)
    # Support a trait needs before a name (descriptive or archetype) may rest on it: a lift or median from a handful
    # of people is noise, and "Senior" from the one member of 412 with an age is not about the segment.
    # A category or payment method needs at least this share of ALL customers buying it (order share > 0): a
    # department with 5 lines in the whole data can show a 3x lift on 0.0% of orders.
    min_category_buyers_share: float = Field(default=0.02, ge=0, le=1)
    # ... and at least this many buyers inside the segment. A small segment needs only a quarter of its members
    # (min(this, ceil(0.25 x members)); assets/segments/naming.py SMALL_SEGMENT_BUYERS_FRACTION), else no category
    # of a small shop could ever name a segment of fewer than 30 people.
    min_segment_buyers: int = Field(default=30, ge=1)
    # A demographic trait (age, income, gender, home owner) needs a known value for at least this share of the
    # segment's members: the profile fields cover only the customers who filled them in. Median words (age,
    # income) also need at least 10 members with the value (assets/features/traits.py MIN_MEDIAN_PEOPLE).
    min_profile_coverage_for_names: float = Field(default=0.5, ge=0, le=1)
    # A category or payment method names a segment only when the segment buys it (or pays by it) at least this many
    # times as often as everyone, in share of orders (assets/features/traits.py lift_names): where three orders in
    # four are paid by card, a segment at 83% card is not "card payers".
    min_trait_lift: float = Field(default=1.25, ge=1)


class PrivacySettings(Strict):
    # Source columns holding personal data (name, phone, email, address), in either input, and what ingest does
    # with them before anything is written: `drop` never reads the column; `hash` replaces each value by its
    # salted HMAC-SHA256 (salt from PERSONA_PII_SALT), for a column mapped to a contract field such as
    # customer_id (a phone number used as the member id).
    pii_columns: dict[str, Literal["drop", "hash"]] = Field(default_factory=dict)


class PredictSettings(Strict):
    """The predictive layer (assets/predict/): churn risk, next-category recommendations and customer lifetime
    value."""

    # Churn = no purchase in the next horizon_days; the model is judged on the last horizon of the data.
    horizon_days: int = Field(default=30, ge=7, le=365)
    # Days of order history the training cutoff needs before it; with less, churn is not trained.
    min_history_days: int = Field(default=28, ge=1)
    # Warnings (asset checks, not blocking): held-out AUC below min_auc, calibration error above the limit.
    min_auc: float = Field(default=0.7, ge=0.5, le=1)
    max_calibration_error: float = Field(default=0.1, gt=0, le=1)
    # A customer with churn_risk at or above this is "at risk" (the report's at-risk high-value customers).
    high_risk_threshold: float = Field(default=0.5, gt=0, lt=1)
    # Recommendations per customer, and the rules they come from (customer-level co-purchase).
    top_n: int = Field(default=3, ge=1, le=20)
    min_support: float = Field(default=0.01, gt=0, le=1)
    min_confidence: float = Field(default=0.05, ge=0, le=1)
    # Warning when the held-out hit-rate@top_n is below this multiple of the popularity baseline's.
    min_lift_over_popularity: float = Field(default=1.1, gt=0)
    # Churn models fit on at most this many customers (a seeded sample); scoring covers everyone.
    train_sample: int = Field(default=100_000, ge=100)
    # Retraining cadence, in days of data: a run whose data ends fewer than this many days after the data of the
    # latest churn model (and of the latest co-purchase rules) scores with that model and recommends with those
    # rules, keeping their held-out figures; the first run at or past it trains and mines again, and so does any
    # run whose feature columns or model settings changed. 0: every run trains.
    retrain_every_days: int = Field(default=7, ge=0, le=365)
    # Customer lifetime value (predict.customer_value): expected purchases and spend over the next this many days,
    # from an MBG/NBD + Gamma-Gamma model.
    clv_horizon_days: int = Field(default=365, ge=1, le=3650)
    # The customer-value model is judged on its own held-out window, the last clv_eval_days days of the data: refitted
    # on the orders before them, predicting each customer's purchases in them. Longer than the churn horizon because
    # a month's purchase counts are mostly 0, 1 and 2, too noisy to rank customers by (docs/predictions.md). With less
    # than min_history_days + clv_eval_days of orders the model is still fitted and published, and the evaluation
    # says it was not judged (status short_history) rather than use a shorter window.
    clv_eval_days: int = Field(default=90, ge=7, le=730)
    seed: int = 42
