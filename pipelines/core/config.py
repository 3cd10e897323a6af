"""Source configuration: how one shop's files map onto the persona-pipeline data contract.

A new shop needs a YAML file, not code. The file is validated with pydantic, and every error names the config
file and the dotted key that is wrong, so an ops analyst can fix it without reading a traceback.
"""

from __future__ import annotations

import difflib
import glob
import typing
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

# The config's parts live in sources.py and settings.py; they are imported from here too, the config's one door.
from pipelines.core.audience_rules import Audience  # noqa: F401
from pipelines.core.settings import (  # noqa: F401
    DEFAULT_VALUE_MAPS,
    IngestSettings,
    ModelSettings,
    NameOverride,
    PredictSettings,
    PrivacySettings,
    QualitySettings,
    SegmentSettings,
    ValueMaps,
    extend_defaults,
)
from pipelines.core.sources import (  # noqa: F401
    CUSTOMER_FIELDS,
    CUSTOMER_REQUIRED,
    DATE_PLACEHOLDER,
    FORMAT_BY_SUFFIX,
    LONG_ORDER_FIELDS,
    LONG_ORDER_OPTIONAL_FIELDS,
    LONG_ORDER_REQUIRED,
    PRODUCT_FIELDS,
    PRODUCT_REQUIRED,
    PROFILE_FIELDS,
    WIDE_ORDER_FIELDS,
    WIDE_ORDER_REQUIRED,
    CategoryRule,
    ConfigError,
    CustomersSource,
    FileSource,
    OrdersSource,
    ProductsSource,
    Strict,
    TokenMap,
    files_by_day,
    resolve_paths,
)


class SourceConfig(Strict):
    name: str = Field(min_length=1)
    shape: Literal["long", "wide"]
    orders: OrdersSource
    customers: CustomersSource | None = None
    # Long shape: a product table whose category an order line takes by its sku.
    products: ProductsSource | None = None
    values: ValueMaps = Field(default_factory=ValueMaps)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    # Optional bilingual labels for categories not covered by the built-in taxonomy: name -> [zh, en].
    category_labels: dict[str, tuple[str, str]] = Field(default_factory=dict)
    # Churn risk and next-category recommendations (assets/predict/).
    predict: PredictSettings = Field(default_factory=PredictSettings)
    # Named rules over the per-customer view (assets/audiences/, pipelines/core/audience_rules.py).
    audiences: list[Audience] = Field(default_factory=list)
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
        listed = [field for field, column in self.orders.columns.items() if isinstance(column, list)]
        if listed and listed != ["order_ts"]:
            field = next(field for field in listed if field != "order_ts")
            raise ValueError(f"orders.columns.{field}: only order_ts takes a list of two columns (a date and a time "
                             "of day); map one column")
        if self.customers is not None:
            unknown = sorted(set(self.customers.columns) - set(CUSTOMER_FIELDS))
            if unknown:
                raise ValueError(
                    f"customers.columns: unknown contract field(s) {unknown}; allowed: {list(CUSTOMER_FIELDS)}"
                )
        if self.products is not None:
            unknown = sorted(set(self.products.columns) - set(PRODUCT_FIELDS))
            if unknown:
                raise ValueError(
                    f"products.columns: unknown contract field(s) {unknown}; allowed: {list(PRODUCT_FIELDS)}")
        self._absent_field_rules()
        self._category_source_rules()
        self._line_identity_rules()
        self._privacy_rules(allowed)
        names = [audience.name for audience in self.audiences]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"audiences: audience name(s) {repeated} defined more than once")
        return self

    def _absent_field_rules(self) -> None:
        """Only order_id and category (long shape) may be declared absent with a null mapping."""
        may_be_absent = LONG_ORDER_OPTIONAL_FIELDS if self.shape == "long" else ()
        for key, source in (("orders", self.orders), ("customers", self.customers), ("products", self.products)):
            if source is None:
                continue
            nulls = sorted(field for field, column in source.columns.items() if column is None)
            wrong = [field for field in nulls if key != "orders" or field not in may_be_absent]
            if wrong:
                allowed = f"; only {' and '.join(may_be_absent)} may be" if key == "orders" and may_be_absent else ""
                raise ValueError(f"{key}.columns: {wrong} mapped to null (declared absent){allowed}; map a source "
                                 "column or leave the field out")

    def _category_source_rules(self) -> None:
        orders = self.orders
        if self.shape == "wide":
            if self.products is not None or orders.category_rules:
                raise ValueError("products / orders.category_rules: the wide shape takes its categories from "
                                 "orders.category_columns")
            return
        if "category" in orders.columns and orders.columns["category"] is None and (
                self.products is not None or orders.category_rules):
            raise ValueError("orders.columns.category: null declares that the export has no category, but "
                             "products or orders.category_rules give one; leave orders.columns.category out")
        if orders.category_rules and orders.columns.get("description", "description") is None:
            raise ValueError("orders.category_rules: the rules read the description field; map it under "
                             "orders.columns.description")

    @property
    def derives_order_id(self) -> bool:
        """No order id in the export: an order is the lines of one customer at one timestamp."""
        return self.shape == "long" and "order_id" in self.orders.columns and self.orders.columns["order_id"] is None

    @property
    def has_categories(self) -> bool:
        """False when the long export has no category at all: segments come from RFM, payment and demographics."""
        if self.shape == "wide":
            return True
        declared_absent = "category" in self.orders.columns and self.orders.columns["category"] is None
        return not declared_absent

    def order_required(self) -> tuple[str, ...]:
        """The order fields each file must hold: the shape's, less those declared absent or given elsewhere
        (category from products or rules), plus what those read (sku, description)."""
        if self.shape == "wide":
            return WIDE_ORDER_REQUIRED
        required = [f for f in LONG_ORDER_REQUIRED if not (f in self.orders.columns and self.orders.columns[f] is None)]
        if (self.products is not None or self.orders.category_rules) and "category" not in self.orders.columns:
            required.remove("category")
        if self.products is not None:
            required.append("sku")
        if self.orders.category_rules:
            required.append("description")
        return tuple(required)

    def _line_identity_rules(self) -> None:
        orders = self.orders
        if orders.fill_down and (self.shape == "wide" or self.derives_order_id):
            raise ValueError("orders.fill_down: a blank value is filled from the same order's earlier line, so it "
                             "needs order lines with an order id (the long shape, orders.columns.order_id mapped)")
        if len(set(orders.fill_down)) != len(orders.fill_down):
            raise ValueError("orders.fill_down: a field is listed twice")
        if orders.order_id_within and self.derives_order_id:
            raise ValueError("orders.order_id_within: the export has no order id (orders.columns.order_id: null) to "
                             "make unique")
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
                                    ("customers", self.customers, CUSTOMER_FIELDS),
                                    ("products", self.products, PRODUCT_FIELDS)):
            if source is not None:
                for field in fields:
                    column = source.columns.get(field, field)
                    for part in column if isinstance(column, list) else [] if column is None else [column]:
                        read.setdefault(part, f"{key}.columns.{field}")
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

    def product_files(self) -> list[Path]:
        if self.products is None:
            return []
        return resolve_paths(self.products.path, self.base_dir, f"{self.source_path}: products.path")

    def customer_files(self) -> list[Path]:
        if self.customers is None:
            return []
        return resolve_paths(self.customers.path, self.base_dir, f"{self.source_path}: customers.path")

    def with_input(self, input_path: str | Path) -> SourceConfig:
        """The same config reading its orders from another path (the CLI's --input)."""
        # A path given on the command line is a file, never a pattern: escape glob characters in it.
        update: dict = {"path": glob.escape(str(Path(input_path).resolve()))}
        # A file whose suffix names another format than the config declares says what it is (a CSV given to a
        # Parquet shop's config is read as CSV); an unknown suffix keeps the declared format.
        told = FORMAT_BY_SUFFIX.get(Path(input_path).suffix.lower())
        if self.orders.format is not None and told is not None and told != self.orders.format:
            update["format"] = None
        orders = self.orders.model_copy(update=update)
        return self.model_copy(update={"orders": orders})


def load_source_config(path: str | Path) -> SourceConfig:
    """Read and validate a YAML source config; errors name the file and the dotted key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config files must be UTF-8 (byte offset {exc.start} is not)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc, text)}") from None
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


def yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """PyYAML's error on one line, `line 7, column 3: mapping values are not allowed here`: its own message spans
    several lines and quotes the document as "<unicode string>". Lines and columns count from 1, as editors do."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            # An unclosed bracket or quote is found where the next token does not fit; the context says where
            # it opened, which is the line to fix.
            opened = exc.context_mark
            problem += f" ({exc.context} at line {opened.line + 1}, column {opened.column + 1})"
        return problem
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: PyYAML gives a character offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)  # rfind is -1 on the first line
        return f"line {line}, column {column}: {str(exc).splitlines()[0]}"
    return " ".join(str(exc).split())


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
