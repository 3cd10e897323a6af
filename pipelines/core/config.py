"""Source configuration: how one shop's files map onto the persona-pipeline data contract.

A new shop needs a YAML file, not code. The file is validated with pydantic, and every error names the config
file and the dotted key that is wrong, so an ops analyst can fix it without reading a traceback.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
import typing
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# Contract fields per input. "Required" fields must be present in the source (mapped or same-named).
LONG_ORDER_FIELDS = (
    "order_id", "customer_id", "order_ts", "category", "quantity", "amount", "unit_price",
    "payment_method", "channel", "sku", "line_id", "status",
)
LONG_ORDER_REQUIRED = ("order_id", "customer_id", "order_ts", "category")
PROFILE_FIELDS = ("age", "birth_year", "gender", "income", "home_owner", "city")
WIDE_ORDER_FIELDS = ("order_id", "customer_id", "order_ts", "amount", "payment_method", "channel", *PROFILE_FIELDS)
WIDE_ORDER_REQUIRED = ("customer_id", "amount")
CUSTOMER_FIELDS = ("customer_id", *PROFILE_FIELDS)
CUSTOMER_REQUIRED = ("customer_id",)

ENCODING_ALIASES = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "gbk": "gbk", "gb2312": "gbk", "cp936": "gbk", "gb18030": "gb18030",
}


class ConfigError(ValueError):
    """A source config that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenMap(_Strict):
    """Spellings a shop uses for yes/no style values; matched case-insensitively after trimming."""

    # Not named true/false: YAML 1.1 would read those keys as booleans.
    true_tokens: list[str] = Field(default_factory=lambda: ["T", "TRUE", "1", "Y", "YES", "是"])
    false_tokens: list[str] = Field(default_factory=lambda: ["F", "FALSE", "0", "N", "NO", "否"])

    @field_validator("true_tokens", "false_tokens", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value: object) -> object:
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            raise ValueError("YAML reads unquoted yes/no/true/false/on/off as booleans; quote the tokens, "
                             "for example ['YES', 'NO']")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> TokenMap:
        overlap = {t.upper() for t in self.true_tokens} & {t.upper() for t in self.false_tokens}
        if overlap:
            raise ValueError(f"tokens listed as both true and false: {sorted(overlap)}")
        return self


# The placeholder for the day in a daily landing path, e.g. `landing/orders/{date}.csv` (YYYY-MM-DD).
DATE_PLACEHOLDER = "{date}"


class FileSource(_Strict):
    """One input: a path or glob (relative paths resolve against the config file's folder)."""

    path: str | list[str]
    format: Literal["csv", "parquet", "json", "excel"] | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    # Title lines above the header (CSV, Excel): cut off before reading; row numbers count from the header.
    skip_rows: int = Field(default=0, ge=0)
    # contract field -> source column; unmapped contract fields fall back to a same-named source column.
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        key = value.strip().lower()
        if key not in ENCODING_ALIASES:
            raise ValueError(f"unsupported encoding {value!r}; use one of {sorted(ENCODING_ALIASES)}")
        return ENCODING_ALIASES[key]

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        value = "\t" if value in ("\\t", "tab") else value
        if value == "whitespace":  # runs of spaces and tabs (assets/raw/readers.py reads a tab-separated copy)
            return value
        if len(value) != 1:
            raise ValueError(f"delimiter must be a single character or 'whitespace', got {value!r}")
        return value


class OrdersSource(FileSource):
    # Wide shape only: the columns holding one purchase flag per category.
    category_columns: list[str] = Field(default_factory=list)
    flag_tokens: TokenMap = Field(default_factory=TokenMap)
    # strptime formats tried in order for order_ts; ISO 8601 is always tried last.
    date_formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"])
    # Long shape: the contract fields that identify an order line. Without one every source row is a line of its
    # own: a till scanning one item twice, or a category-level export, repeats (order, category, sku) legitimately.
    line_key: list[str] | None = None
    # Rows equal in every field: `drop` keeps the first and counts the others as removed duplicates (an export
    # that repeats rows); `keep` loads each as a line (a shop whose identical rows are real repeated scans).
    exact_duplicates: Literal["drop", "keep"] = "drop"

    def declared_line_key(self) -> list[str] | None:
        """The line key the source declares: `line_key`, or (order_id, line_id) when a line-id column is mapped."""
        if self.line_key:
            return list(self.line_key)
        if "line_id" in self.columns:
            return ["order_id", "line_id"]
        return None


class CustomersSource(FileSource):
    pass


# Built-in value maps: the usual English and Chinese spellings (tokens compare upper-cased after trimming). A
# shop's `values:` adds to them unless `values.replace_defaults` is true (docs/configuration.md).
DEFAULT_GENDER = {"M": "M", "MALE": "M", "男": "M", "男性": "M", "F": "F", "FEMALE": "F", "女": "F", "女性": "F"}
DEFAULT_PAYMENT_METHODS = ["CARD", "CASH", "MOBILE", "CHEQUE"]
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
}
DEFAULT_CANCELLED_STATUSES = ["CANCELLED", "CANCELED", "VOID", "已取消", "取消", "交易关闭", "已退款", "退款成功"]
DEFAULT_VALUE_MAPS = {
    "gender": DEFAULT_GENDER,
    "payment_methods": DEFAULT_PAYMENT_METHODS,
    "payment_aliases": DEFAULT_PAYMENT_ALIASES,
    "cancelled_statuses": DEFAULT_CANCELLED_STATUSES,
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


class ValueMaps(_Strict):
    """How raw codes normalise into the contract's vocabulary."""

    # false: the maps and lists below add to the built-in ones (DEFAULT_VALUE_MAPS); true: they replace them.
    replace_defaults: bool = Field(default=False, strict=True)
    gender: dict[str, Literal["M", "F"]] = Field(default_factory=lambda: dict(DEFAULT_GENDER))
    home_owner: TokenMap = Field(default_factory=TokenMap)
    # Accepted payment codes (compared upper-cased); any other code quarantines its row.
    payment_methods: list[str] = Field(default_factory=lambda: list(DEFAULT_PAYMENT_METHODS))
    # Shop spellings that mean an accepted code.
    payment_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PAYMENT_ALIASES))
    # Order statuses that mean the order did not happen (long shape, optional `status` column).
    cancelled_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_CANCELLED_STATUSES))

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


class QualitySettings(_Strict):
    """Thresholds of the quality gate. Row rules quarantine single rows; suite thresholds block whole runs."""

    age_range: tuple[float, float] = (0, 120)
    income_range: tuple[float, float] = (0, 100_000_000)
    max_quantity: float = Field(default=10_000, gt=0)
    max_line_amount: float = Field(default=10_000_000, gt=0)
    # Order timestamps later than the run by more than this are quarantined (files carry local time).
    future_tolerance_hours: float = Field(default=24, ge=0)
    # Raw suites: the share of rows that must carry their key columns, else the run is blocked.
    min_key_share: float = Field(default=0.95, ge=0, le=1)
    # Load audit: the share of rows that may be quarantined before the run is blocked.
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1)
    # Staging: the share of ordering customers expected to have a profile row (a warning, not a block).
    min_profile_coverage: float = Field(default=0.9, ge=0, le=1)
    # Isolation forest on per-customer aggregates; flagged customers do not shape the segments.
    outlier_contamination: float = Field(default=0.005, gt=0, le=0.5)
    outlier_seed: int = 42
    # Within this many days of data after the forest was fitted, a run reuses it and scores only the customers
    # whose inputs changed (quality/outliers.py); 0 refits it on every run.
    outlier_refit_every_days: int = Field(default=7, ge=0)
    # Rows per Great Expectations batch; keys are hash-partitioned so uniqueness stays exact across batches.
    validation_batch_rows: int = Field(default=2_000_000, ge=1000)

    @field_validator("age_range", "income_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"the range must be [min, max], got {list(value)}")
        return value


class ModelSettings(_Strict):
    # A fixed number of segments; leave it out to choose k automatically over k_range.
    k: int | None = Field(default=None, ge=2, le=20)
    # Operations teams need several actionable segments, never two.
    k_range: tuple[int, int] = (3, 8)
    # Business constraint on a candidate k: every segment holds at least this share of customers.
    min_segment_share: float = Field(default=0.05, ge=0, lt=0.5)
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


class NameOverride(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class SegmentSettings(_Strict):
    # YAML archetype rules used to name segments; default: the built-in assets/segments/archetypes.yaml.
    archetypes_file: str | None = None
    # Names chosen by people, keyed by stable segment id; they survive every refresh.
    name_overrides: dict[int, NameOverride] = Field(default_factory=dict)


class PrivacySettings(_Strict):
    # Source columns holding personal data (name, phone, email, address), in either input, and what ingest does
    # with them before anything is written: `drop` never reads the column; `hash` replaces each value by its
    # salted HMAC-SHA256 (salt from PERSONA_PII_SALT), for a column mapped to a contract field such as
    # customer_id (a phone number used as the member id).
    pii_columns: dict[str, Literal["drop", "hash"]] = Field(default_factory=dict)


class PredictSettings(_Strict):
    """The predictive layer (assets/predict/): churn risk and next-category recommendations."""

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
    seed: int = 42


class SourceConfig(_Strict):
    name: str = Field(min_length=1)
    shape: Literal["long", "wide"]
    orders: OrdersSource
    customers: CustomersSource | None = None
    values: ValueMaps = Field(default_factory=ValueMaps)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    # Optional bilingual labels for categories not covered by the built-in taxonomy: name -> [zh, en].
    category_labels: dict[str, tuple[str, str]] = Field(default_factory=dict)
    # Churn risk and next-category recommendations (assets/predict/).
    predict: PredictSettings = Field(default_factory=PredictSettings)
    # The config file itself; relative paths resolve against its folder. Filled by load_source_config.
    source_path: Path = Field(default=Path("source.yaml"), exclude=True)

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent

    @model_validator(mode="after")
    def _shape_rules(self) -> SourceConfig:
        if self.shape == "wide" and not self.orders.category_columns:
            raise ValueError("orders.category_columns: the wide shape needs at least one category flag column")
        if self.shape == "long" and self.orders.category_columns:
            raise ValueError("orders.category_columns: only the wide shape has category flag columns")
        allowed = LONG_ORDER_FIELDS if self.shape == "long" else WIDE_ORDER_FIELDS
        unknown = sorted(set(self.orders.columns) - set(allowed))
        if unknown:
            raise ValueError(f"orders.columns: unknown contract field(s) {unknown}; allowed: {list(allowed)}")
        if self.customers is not None:
            unknown = sorted(set(self.customers.columns) - set(CUSTOMER_FIELDS))
            if unknown:
                raise ValueError(
                    f"customers.columns: unknown contract field(s) {unknown}; allowed: {list(CUSTOMER_FIELDS)}"
                )
        self._line_identity_rules()
        self._privacy_rules(allowed)
        return self

    def _line_identity_rules(self) -> None:
        orders = self.orders
        if self.shape == "wide":
            if orders.line_key is not None:
                raise ValueError("orders.line_key: only the long shape has order lines; a basket row is identified "
                                 "by its order_id")
            if orders.exact_duplicates == "keep":
                raise ValueError("orders.exact_duplicates: only the long shape can keep identical rows; the wide "
                                 "shape drops exact copies of a basket")
            return
        if orders.exact_duplicates == "keep" and orders.declared_line_key() is not None:
            raise ValueError("orders.exact_duplicates: keep cannot go with a line key (orders.line_key, or a mapped "
                             "columns.line_id): rows sharing the key are one line, so identical copies are dropped")
        if orders.line_key is None:
            return
        if not orders.line_key:
            raise ValueError("orders.line_key: list the contract fields that identify a line (for example "
                             "[order_id, sku]), or leave the key out: then every row is a line of its own")
        unknown = [field for field in orders.line_key if field not in LONG_ORDER_FIELDS]
        if unknown:
            raise ValueError(f"orders.line_key: unknown contract field(s) {unknown}; "
                             f"allowed: {list(LONG_ORDER_FIELDS)}")
        repeated = sorted({field for field in orders.line_key if orders.line_key.count(field) > 1})
        if repeated:
            raise ValueError(f"orders.line_key: field(s) {repeated} listed twice")

    def _privacy_rules(self, order_fields) -> None:
        """A dropped column must not be one the contract reads; a hashed one must be (or it would be dropped)."""
        read = {}
        for key, source, fields in (("orders", self.orders, order_fields),
                                    ("customers", self.customers, CUSTOMER_FIELDS)):
            if source is not None:
                for field in fields:
                    read.setdefault(source.columns.get(field, field), f"{key}.columns.{field}")
        for column, action in self.privacy.pii_columns.items():
            if action == "drop" and column in read:
                raise ValueError(f"privacy.pii_columns.{column}: the contract reads this column ({read[column]}); "
                                 "use hash to keep it pseudonymised, or map another column")
            if action == "hash" and column not in read:
                raise ValueError(f"privacy.pii_columns.{column}: hash keeps a pseudonymised value only for a column "
                                 "mapped to a contract field (for example customer_id); use drop for this one")

    @property
    def daily(self) -> bool:
        """Orders land as one file (or folder) per day: the path holds {date}, and each day is a partition."""
        return isinstance(self.orders.path, str) and DATE_PLACEHOLDER in self.orders.path

    def order_files(self) -> list[Path]:
        if self.daily:
            return [path for paths in self.order_files_by_day().values() for path in paths]
        return resolve_paths(self.orders.path, self.base_dir, f"{self.source_path}: orders.path")

    def order_files_by_day(self) -> dict[date, list[Path]]:
        """Daily sources: every landing file under the path template, by the day its path names."""
        key = f"{self.source_path}: orders.path"
        return files_by_day(str(self.orders.path), self.base_dir, key)

    def customer_files(self) -> list[Path]:
        if self.customers is None:
            return []
        return resolve_paths(self.customers.path, self.base_dir, f"{self.source_path}: customers.path")

    def with_input(self, input_path: str | Path) -> SourceConfig:
        """The same config reading its orders from another path (the CLI's --input)."""
        # A path given on the command line is a file, never a pattern: escape glob characters in it.
        orders = self.orders.model_copy(update={"path": glob.escape(str(Path(input_path).resolve()))})
        return self.model_copy(update={"orders": orders})


def resolve_paths(pattern: str | list[str], base_dir: Path, key: str) -> list[Path]:
    """Expand paths and globs in a stable (sorted) order; a pattern matching nothing is an error."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files: list[Path] = []
    for item in patterns:
        # Escape the folder so brackets or stars in its name are taken literally; only the pattern may glob.
        full = item if os.path.isabs(item) else os.path.join(glob.escape(str(base_dir)), item)
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else ([full] if os.path.exists(full) else [])
        if not matches:
            shown = item if os.path.isabs(item) else str(base_dir / item)
            raise ConfigError(f"{key}: no file matches {item!r} (looked for {shown})")
        files.extend(Path(m).resolve() for m in matches)
    return files


def files_by_day(template: str, base_dir: Path, key: str) -> dict[date, list[Path]]:
    """Expand a path template holding {date} (it may also glob) into the files of each day, days in order.
    A path whose {date} part is not a real YYYY-MM-DD day is an error naming the file."""
    if template.count(DATE_PLACEHOLDER) != 1:
        raise ConfigError(f"{key}: use {DATE_PLACEHOLDER} exactly once in a daily path, got {template!r}")
    full = template if os.path.isabs(template) else os.path.join(str(base_dir), template)
    head, tail = full.split(DATE_PLACEHOLDER)
    pattern = glob.escape(head) + "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" + tail
    day_at = re.compile(re.escape(head) + r"(\d{4}-\d{2}-\d{2})")
    by_day: dict[date, list[Path]] = {}
    for match in sorted(glob.glob(pattern)):
        text = day_at.match(match).group(1)
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{key}: {match}: {text!r} is not a calendar day (YYYY-MM-DD)") from None
        by_day.setdefault(day, []).append(Path(match).resolve())
    if not by_day:
        raise ConfigError(f"{key}: no file matches {template!r} (looked for {head}YYYY-MM-DD{tail})")
    return dict(sorted(by_day.items()))


def load_source_config(path: str | Path) -> SourceConfig:
    """Read and validate a YAML source config; errors name the file and the dotted key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config files must be UTF-8 (byte offset {exc.start} is not)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (name, shape, orders, ...)")
    try:
        config = SourceConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = unknown_key_message(err["loc"])
            # Cross-field rules carry their key at the start of the message already.
            problems.append(f"{path}: {key}: {message}" if key else f"{path}: {message}")
        raise ConfigError("\n".join(problems)) from None
    return config.model_copy(update={"source_path": path.resolve()})


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The config model an annotation holds (`CustomersSource | None` holds CustomersSource), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((model for arg in typing.get_args(annotation) if (model := _model_in(arg)) is not None), None)


def keys_at(location: tuple) -> list[str] | None:
    """The keys a config accepts inside the section at `location` (a pydantic error location), None when that
    section is not a model of its own."""
    annotation: object = SourceConfig
    for part in location:
        model = _model_in(annotation)
        if model is not None and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]  # `part` is one of the mapping's own keys
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return None
    model = _model_in(annotation)
    if model is None:
        return None
    return [name for name, field in model.model_fields.items() if not field.exclude]


def unknown_key_message(location: tuple) -> str:
    """`unknown key; did you mean 'delimiter'?`: the closest key valid at that level, or the list of them."""
    valid = keys_at(location[:-1])
    if not valid:
        return "unknown key"
    close = difflib.get_close_matches(str(location[-1]), valid, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; the keys here are {', '.join(valid)}"
