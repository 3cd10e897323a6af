"""Tests for the source config (pipelines.core.config).

Why these tests: a new shop is onboarded with a YAML file, not code, so an ops analyst must be able to fix a
broken config from the error message alone. Every error therefore has to name the config file and the dotted
key that is wrong, and paths must resolve the same way wherever the pipeline is started from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.config import (
    ConfigError,
    FileSource,
    SourceConfig,
    load_source_config,
    resolve_paths,
)
from tests.conftest import EXAMPLES, write_file

BASKET_CATEGORIES = [
    "fruitveg", "freshmeat", "dairy", "cannedveg", "cannedmeat", "frozenmeal",
    "beer", "wine", "softdrink", "fish", "confectionery",
]

LONG_BASE = "name: shop\nshape: long\norders:\n  path: orders.csv\n"
WIDE_BASE = "name: shop\nshape: wide\norders:\n  path: baskets.csv\n"


def _config(tmp_path: Path, text: str, name: str = "source.yaml", encoding: str = "utf-8") -> Path:
    return write_file(tmp_path / name, text, encoding=encoding)


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_source_config(path)
    return str(info.value)


# --- the shipped examples -------------------------------------------------------------------------------------


def test_baskets_example_loads_as_wide_with_eleven_categories() -> None:
    config = load_source_config(EXAMPLES / "baskets.yaml")

    assert config.name == "baskets"
    assert config.shape == "wide"
    assert config.orders.category_columns == BASKET_CATEGORIES
    assert len(config.orders.category_columns) == 11
    assert config.orders.columns["customer_id"] == "cardid"
    assert config.orders.columns["amount"] == "value"
    assert config.orders.columns["payment_method"] == "pmethod"
    assert config.orders.flag_tokens.true_tokens == ["T"]
    assert config.orders.flag_tokens.false_tokens == ["F"]
    assert (config.model.k, config.model.k_range, config.model.seed) == (None, (3, 8), 42)
    assert config.model.features == ["demographics", "categories"]
    assert config.customers is None
    assert config.base_dir == EXAMPLES.resolve()
    assert config.source_path == (EXAMPLES / "baskets.yaml").resolve()


def test_baskets_example_orders_path_resolves_to_the_shared_seed_table(seed_baskets: Path) -> None:
    config = load_source_config(EXAMPLES / "baskets.yaml")

    assert config.order_files() == [seed_baskets.resolve()]
    assert config.customer_files() == []


def test_demo_example_loads_as_long_with_a_customer_file() -> None:
    config = load_source_config(EXAMPLES / "demo.yaml")

    assert config.name == "demo"
    assert config.shape == "long"
    assert config.orders.path == "../data/demo/orders/order_day={date}/*.csv"
    assert config.daily
    assert config.orders.format == "csv"
    assert config.orders.encoding == "utf-8"
    assert config.orders.date_formats == ["%Y-%m-%d %H:%M:%S"]
    assert config.orders.category_columns == []
    assert config.customers is not None
    assert config.customers.path == "../data/demo/customers.csv"
    assert config.values.payment_methods == ["STORED_VALUE", "TRANSFER", "CARD", "CASH", "MOBILE", "CHEQUE"]
    assert config.model.k is None


def test_minimal_long_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_source_config(_config(tmp_path, LONG_BASE))

    assert config.orders.encoding == "utf-8"
    assert config.orders.delimiter == ","
    assert config.orders.columns == {}
    assert config.orders.date_formats == ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
    assert config.model.k is None and config.model.k_range == (3, 8)
    assert config.model.features == ["demographics", "categories", "rfm", "payment"]
    assert config.values.gender["男"] == "M"
    assert config.base_dir == tmp_path.resolve()


# --- validation errors name the file and the dotted key -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        pytest.param(LONG_BASE + "owner: ops\n", "owner",
                     "unknown key; the keys here are name, shape, orders, customers, products, values, ingest, quality, model, "
                     "segments, privacy, category_labels, predict", id="unknown-top-level-key"),
        pytest.param(LONG_BASE.replace("  path: orders.csv\n", "  path: orders.csv\n  sheet: 1\n"),
                     "orders.sheet", "unknown key; the keys here are path, format", id="unknown-nested-key"),
        pytest.param("name: shop\norders:\n  path: orders.csv\n", "shape", "Field required", id="missing-shape"),
        pytest.param(LONG_BASE.replace("shape: long", "shape: tall"), "shape", "Input should be 'long' or 'wide'",
                     id="bad-shape"),
        pytest.param(LONG_BASE + "  encoding: latin-9\n", "orders.encoding", "unsupported encoding 'latin-9'",
                     id="unsupported-encoding"),
        pytest.param(LONG_BASE + "  delimiter: ';;'\n", "orders.delimiter",
                     "delimiter must be a single character or 'whitespace', got ';;'", id="two-char-delimiter"),
        pytest.param(LONG_BASE + "  columns: {customer_id: cid, colour: col}\n", "orders.columns",
                     "unknown contract field(s) ['colour']", id="unknown-contract-field"),
        pytest.param(LONG_BASE + "customers:\n  path: c.csv\n  columns: {amount: value}\n", "customers.columns",
                     "unknown contract field(s) ['amount']", id="unknown-customer-field"),
        pytest.param(WIDE_BASE, "orders.category_columns", "the wide shape needs at least one category flag column",
                     id="wide-without-categories"),
        pytest.param(LONG_BASE + "  category_columns: [beer]\n", "orders.category_columns",
                     "only the wide shape has category flag columns", id="long-with-categories"),
        pytest.param(WIDE_BASE + "  category_columns: [beer]\n"
                     "  flag_tokens: {true_tokens: [T, 'yes'], false_tokens: [F, 'YES']}\n",
                     "orders.flag_tokens", "tokens listed as both true and false: ['YES']", id="overlapping-flags"),
        pytest.param(LONG_BASE + "model:\n  k: 1\n", "model.k", "greater than or equal to 2", id="k-too-small"),
        pytest.param(LONG_BASE + "model:\n  features: [colour]\n", "model.features.0", "Input should be",
                     id="unknown-feature-family"),
        pytest.param(LONG_BASE.replace("name: shop", "name: ''"), "name", "at least 1 character", id="empty-name"),
    ],
)
def test_invalid_config_error_names_file_and_dotted_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = _config(tmp_path, text)

    message = _error(path)

    assert f"{path}: {key}: " in message
    assert fragment in message


def test_unsupported_encoding_message_lists_the_supported_ones(tmp_path: Path) -> None:
    message = _error(_config(tmp_path, LONG_BASE + "  encoding: latin-9\n"))

    assert "use one of ['cp936', 'gb18030', 'gb2312', 'gbk', 'utf-8', 'utf-8-sig', 'utf8']" in message


def test_unknown_contract_field_message_lists_the_allowed_fields(tmp_path: Path) -> None:
    message = _error(_config(tmp_path, WIDE_BASE + "  category_columns: [beer]\n  columns: {category: cat}\n"))

    # "category" is a long-shape field; the wide shape lists its own fields.
    assert "orders.columns: unknown contract field(s) ['category']" in message
    assert "'customer_id', 'order_ts', 'amount'" in message
    assert "'home_owner'" in message


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "name: ''\nshape: tall\norders:\n  path: o.csv\n  encoding: latin-9\n")

    lines = _error(path).splitlines()

    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert [line.split(": ")[1] for line in lines] == ["name", "shape", "orders.encoding"]


@pytest.mark.parametrize(
    ("section", "line"),
    [
        pytest.param(LONG_BASE + "  delimter: ';'\n", "orders.delimter: unknown key; did you mean 'delimiter'?",
                     id="orders"),
        pytest.param(LONG_BASE + "customers:\n  path: c.csv\n  encodng: gbk\n",
                     "customers.encodng: unknown key; did you mean 'encoding'?", id="customers"),
        pytest.param(LONG_BASE + "  line_keys: [order_id, sku]\n",
                     "orders.line_keys: unknown key; did you mean 'line_key'?", id="line-key"),
        pytest.param(LONG_BASE + "values:\n  payment_alias: {Venmo: MOBILE}\n",
                     "values.payment_alias: unknown key; did you mean 'payment_aliases'?", id="values"),
        pytest.param(LONG_BASE + "values:\n  home_owner: {true_token: ['Y']}\n",
                     "values.home_owner.true_token: unknown key; did you mean 'true_tokens'?", id="two-levels-down"),
        pytest.param(LONG_BASE + "segments:\n  name_overrides:\n    2: {zh: 甲, en: A, fr: B}\n",
                     "segments.name_overrides.2.fr: unknown key; the keys here are zh, en", id="inside-a-mapping"),
        pytest.param(LONG_BASE + "modle:\n  k: 3\n", "modle: unknown key; did you mean 'model'?", id="top-level"),
    ],
)
def test_unknown_key_suggests_the_closest_valid_key(tmp_path: Path, section: str, line: str) -> None:
    path = _config(tmp_path, section)

    assert _error(path) == f"{path}: {line}"


def test_missing_orders_section_names_orders(tmp_path: Path) -> None:
    path = _config(tmp_path, "name: shop\nshape: long\n")

    assert f"{path}: orders: Field required" in _error(path)


def test_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "name: shop\nshape: [long\norders:\n  path: o.csv\n")

    message = _error(path)

    assert message.startswith(f"{path}: not valid YAML: ")
    assert "line 2" in message


@pytest.mark.parametrize("text", ["- name: shop\n- shape: long\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = _config(tmp_path, text)

    assert _error(path) == f"{path}: the top level must be a mapping of keys (name, shape, orders, ...)"


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "source.yaml"

    assert _error(path) == f"{path}: config file not found"


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    assert _error(tmp_path) == f"{tmp_path}: config file not found"


def test_config_with_chinese_labels_in_utf8_loads(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE + "category_labels:\n  生鲜: [生鲜, fresh food]\n")

    assert load_source_config(path).category_labels == {"生鲜": ("生鲜", "fresh food")}


def test_config_saved_as_gbk_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    text = LONG_BASE + "category_labels:\n  生鲜: [生鲜, fresh food]\n"
    path = _config(tmp_path, text, encoding="gbk")
    offset = len(text[: text.index("生")].encode("utf-8"))  # the first non-ASCII byte

    assert _error(path) == f"{path}: config files must be UTF-8 (byte offset {offset} is not)"


# --- yes/no tokens ----------------------------------------------------------------------------------------------

QUOTE_HINT = "YAML reads unquoted yes/no/true/false/on/off as booleans; quote the tokens, for example ['YES', 'NO']"
WIDE_FLAGS = WIDE_BASE + "  category_columns: [beer]\n"


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        pytest.param(WIDE_FLAGS + "  flag_tokens: {true_tokens: [yes, T], false_tokens: [no, F]}\n",
                     ["orders.flag_tokens.true_tokens", "orders.flag_tokens.false_tokens"], id="flag-yes-no"),
        pytest.param(WIDE_FLAGS + "  flag_tokens: {true_tokens: [T], false_tokens: [off]}\n",
                     ["orders.flag_tokens.false_tokens"], id="flag-off-only"),
        pytest.param(LONG_BASE + "values:\n  home_owner: {true_tokens: [Y, true], false_tokens: [N, false]}\n",
                     ["values.home_owner.true_tokens", "values.home_owner.false_tokens"], id="home-owner-true-false"),
    ],
)
def test_unquoted_yaml_boolean_tokens_ask_to_quote_them(tmp_path: Path, section: str, keys: list[str]) -> None:
    path = _config(tmp_path, section)

    assert _error(path).splitlines() == [f"{path}: {key}: {QUOTE_HINT}" for key in keys]


def test_quoted_yes_no_tokens_load_as_text(tmp_path: Path) -> None:
    path = _config(tmp_path, WIDE_FLAGS + "  flag_tokens: {true_tokens: ['YES', 'on'], false_tokens: ['NO', 'off']}\n")

    tokens = load_source_config(path).orders.flag_tokens

    assert (tokens.true_tokens, tokens.false_tokens) == (["YES", "on"], ["NO", "off"])


# --- encodings and delimiters normalise -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "normalised"),
    [("GBK", "gbk"), ("gb2312", "gbk"), ("cp936", "gbk"), ("gb18030", "gb18030"), ("utf8", "utf-8"),
     ("UTF-8", "utf-8"), (" utf-8-sig ", "utf-8")],
)
def test_encoding_aliases_normalise(tmp_path: Path, declared: str, normalised: str) -> None:
    config = load_source_config(_config(tmp_path, LONG_BASE + f"  encoding: '{declared}'\n"))

    assert config.orders.encoding == normalised
    assert FileSource(path="x.csv", encoding=declared).encoding == normalised


@pytest.mark.parametrize("declared", ["tab", "\\t", "\t"])
def test_tab_delimiter_spellings_become_a_tab(declared: str) -> None:
    assert FileSource(path="x.tsv", delimiter=declared).delimiter == "\t"


def test_customers_encoding_is_validated_too(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE + "customers:\n  path: c.csv\n  encoding: big5\n")

    assert f"{path}: customers.encoding: unsupported encoding 'big5'" in _error(path)


# --- paths and globs ------------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = tmp_path / "shop"
    orders = write_file(shop / "data" / "orders.csv", "order_id\n")
    customers = write_file(shop / "data" / "customers.csv", "customer_id\n")
    path = _config(shop / "conf", "name: shop\nshape: long\norders:\n  path: ../data/orders.csv\n"
                   "customers:\n  path: ../data/customers.csv\n")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    config = load_source_config(path)

    assert config.base_dir == (shop / "conf").resolve()
    assert config.order_files() == [orders.resolve()]
    assert config.customer_files() == [customers.resolve()]


def test_glob_matching_several_files_returns_them_sorted(tmp_path: Path) -> None:
    for name in ("2024-03.csv", "2024-01.csv", "2024-02.csv", "notes.txt"):
        write_file(tmp_path / "orders" / name, "order_id\n")
    config = load_source_config(_config(tmp_path, LONG_BASE.replace("orders.csv", "orders/*.csv")))

    files = config.order_files()

    assert [f.name for f in files] == ["2024-01.csv", "2024-02.csv", "2024-03.csv"]
    assert all(f.is_absolute() and f.parent == (tmp_path / "orders").resolve() for f in files)


def test_list_of_paths_keeps_the_listed_order(tmp_path: Path) -> None:
    b = write_file(tmp_path / "b.csv", "x\n")
    a = write_file(tmp_path / "a.csv", "x\n")

    assert resolve_paths(["b.csv", str(a)], tmp_path, "orders.path") == [b.resolve(), a.resolve()]


def test_path_matching_nothing_raises_naming_the_file_and_orders_path(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE.replace("orders.csv", "data/*.csv"))
    config = load_source_config(path)

    with pytest.raises(ConfigError) as info:
        config.order_files()

    message = str(info.value)
    assert message.startswith(f"{path.resolve()}: orders.path: no file matches 'data/*.csv'")
    assert f"looked for {tmp_path}/data/*.csv" in message


def test_missing_plain_file_raises_naming_customers_path(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.csv", "order_id\n")
    path = _config(tmp_path, LONG_BASE + "customers:\n  path: people.csv\n")
    config = load_source_config(path)

    assert len(config.order_files()) == 1
    with pytest.raises(ConfigError) as info:
        config.customer_files()
    assert str(info.value).startswith(f"{path.resolve()}: customers.path: no file matches 'people.csv'")


def test_one_missing_pattern_in_a_list_is_an_error(tmp_path: Path) -> None:
    write_file(tmp_path / "a.csv", "x\n")

    with pytest.raises(ConfigError, match=r"orders\.path: no file matches 'missing\.csv'"):
        resolve_paths(["a.csv", "missing.csv"], tmp_path, "orders.path")


def test_config_folder_with_brackets_in_its_name_still_finds_a_plain_file(tmp_path: Path) -> None:
    shop = tmp_path / "shop[2024]"
    orders = write_file(shop / "orders.csv", "order_id\n")
    config = load_source_config(_config(shop, LONG_BASE))

    assert config.order_files() == [orders.resolve()]


def test_config_folder_with_glob_characters_still_globs_its_pattern(tmp_path: Path) -> None:
    shop = tmp_path / "shop[2024]*?"
    for name in ("2024-02.csv", "2024-01.csv", "notes.txt"):
        write_file(shop / "orders" / name, "order_id\n")
    write_file(tmp_path / "shop2" / "orders" / "2024-03.csv", "order_id\n")  # must not match the unescaped folder
    config = load_source_config(_config(shop, LONG_BASE.replace("orders.csv", "orders/*.csv")))

    assert config.order_files() == [(shop / "orders" / n).resolve() for n in ("2024-01.csv", "2024-02.csv")]


def test_missing_file_in_a_bracketed_folder_names_the_literal_path(tmp_path: Path) -> None:
    shop = tmp_path / "shop[2024]"
    path = _config(shop, LONG_BASE)

    with pytest.raises(ConfigError) as info:
        load_source_config(path).order_files()

    assert str(info.value) == (
        f"{path.resolve()}: orders.path: no file matches 'orders.csv' (looked for {shop.resolve()}/orders.csv)"
    )


def test_with_input_into_a_bracketed_folder_finds_the_file(tmp_path: Path) -> None:
    config = load_source_config(_config(tmp_path, LONG_BASE))
    other = write_file(tmp_path / "shop[2024]" / "orders.csv", "order_id\n")

    assert config.with_input(other).order_files() == [other.resolve()]


# --- with_input -----------------------------------------------------------------------------------------------


def test_with_input_replaces_only_the_orders_path(tmp_path: Path) -> None:
    write_file(tmp_path / "baskets.csv", "cardid\n")
    other = write_file(tmp_path / "elsewhere" / "tonight.csv", "cardid\n")
    config = load_source_config(_config(
        tmp_path,
        WIDE_BASE + "  columns: {customer_id: cardid}\n  category_columns: [beer, wine]\nmodel:\n  k: 3\n",
    ))

    switched = config.with_input(other)

    assert isinstance(switched, SourceConfig)
    assert switched.orders.path == str(other.resolve())
    assert switched.order_files() == [other.resolve()]
    assert switched.orders.columns == {"customer_id": "cardid"}
    assert switched.orders.category_columns == ["beer", "wine"]
    assert switched.model.k == 3
    assert switched.base_dir == tmp_path.resolve()
    assert switched.source_path == config.source_path
    # The original config is untouched.
    assert config.orders.path == "baskets.csv"


@pytest.mark.parametrize(("given", "read_as"), [("tonight.csv", None), ("tonight.parquet", "parquet"),
                                               ("tonight.dat", "parquet")])
def test_with_input_of_another_format_is_read_as_its_suffix_says(tmp_path: Path, given: str, read_as: str) -> None:
    # A Parquet shop's config, given a CSV export on the command line: the file's suffix wins over `format`;
    # a suffix that names no format keeps the declared one.
    config = load_source_config(_config(tmp_path, "name: s\nshape: long\norders:\n  path: orders.parquet\n"
                                                  "  format: parquet\n"))

    assert config.with_input(tmp_path / given).orders.format == read_as


def test_with_input_resolves_a_relative_path_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_source_config(_config(tmp_path / "conf", LONG_BASE))
    work = tmp_path / "cwd"
    override = write_file(work / "in.csv", "order_id\n")
    monkeypatch.chdir(work)

    switched = config.with_input("in.csv")

    assert switched.orders.path == str(override.resolve())
    assert switched.order_files() == [override.resolve()]


def test_with_input_to_a_missing_file_fails_naming_orders_path(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE)
    config = load_source_config(path)
    missing = tmp_path / "gone.csv"

    with pytest.raises(ConfigError) as info:
        config.with_input(missing).order_files()
    assert str(info.value).startswith(f"{path.resolve()}: orders.path: no file matches '{missing.resolve()}'")



# --- order line identity --------------------------------------------------------------------------------------


def test_without_a_declared_key_every_row_is_a_line_and_exact_copies_are_dropped(tmp_path: Path) -> None:
    orders = load_source_config(_config(tmp_path, LONG_BASE)).orders

    assert (orders.line_key, orders.declared_line_key(), orders.exact_duplicates) == (None, None, "drop")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param("  line_key: [order_id, sku]\n", ["order_id", "sku"], id="line-key"),
        pytest.param("  columns: {line_id: LineNo}\n", ["order_id", "line_id"], id="mapped-line-id"),
        pytest.param("  columns: {line_id: LineNo}\n  line_key: [line_id]\n", ["line_id"], id="line-key-wins"),
    ],
)
def test_a_source_declares_its_line_key(tmp_path: Path, section: str, key: list[str]) -> None:
    assert load_source_config(_config(tmp_path, LONG_BASE + section)).orders.declared_line_key() == key


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(LONG_BASE + "  line_key: [order_id, colour]\n",
                     "orders.line_key: unknown contract field(s) ['colour']; allowed: ['order_id', ",
                     id="unknown-field"),
        pytest.param(LONG_BASE + "  line_key: []\n", "orders.line_key: list the contract fields", id="empty"),
        pytest.param(LONG_BASE + "  line_key: [order_id, sku, sku]\n", "orders.line_key: field(s) ['sku'] listed twice",
                     id="repeated"),
        pytest.param(LONG_BASE + "  line_key: [order_id, sku]\n  exact_duplicates: keep\n",
                     "orders.exact_duplicates: keep cannot go with a line key", id="keep-with-a-key"),
        pytest.param(LONG_BASE + "  columns: {line_id: LineNo}\n  exact_duplicates: keep\n",
                     "orders.exact_duplicates: keep cannot go with a line key", id="keep-with-a-line-id"),
        pytest.param(LONG_BASE + "  exact_duplicates: sometimes\n", "orders.exact_duplicates: Input should be 'drop' "
                     "or 'keep'", id="unknown-choice"),
        pytest.param(WIDE_FLAGS + "  line_key: [order_id]\n", "orders.line_key: only the long shape has order lines",
                     id="wide-line-key"),
        pytest.param(WIDE_FLAGS + "  exact_duplicates: keep\n",
                     "orders.exact_duplicates: only the long shape can keep identical rows", id="wide-keep"),
    ],
)
def test_invalid_line_identity_names_the_key(tmp_path: Path, text: str, line: str) -> None:
    path = _config(tmp_path, text)

    assert f"{path}: {line}" in _error(path)


# --- built-in value maps: extended by a shop's values unless replaced -----------------------------------------


def test_built_in_values_know_the_usual_chinese_spellings(tmp_path: Path) -> None:
    values = load_source_config(_config(tmp_path, LONG_BASE)).values

    assert {token: values.payment_aliases[token] for token in (
        "微信", "微信支付", "支付宝", "花呗", "银联", "云闪付", "银行卡", "信用卡", "借记卡", "现金", "货到付款")} == {
        "微信": "MOBILE", "微信支付": "MOBILE", "支付宝": "MOBILE", "花呗": "MOBILE", "银联": "CARD",
        "云闪付": "CARD", "银行卡": "CARD", "信用卡": "CARD", "借记卡": "CARD", "现金": "CASH", "货到付款": "CASH"}
    assert {token: values.gender[token] for token in ("男", "女", "男性", "女性")} == {
        "男": "M", "女": "F", "男性": "M", "女性": "F"}
    assert {"已取消", "交易关闭", "已退款", "退款成功"} <= set(values.cancelled_statuses)
    assert values.replace_defaults is False


def test_a_shops_values_extend_the_built_in_ones_and_win_on_the_same_token(tmp_path: Path) -> None:
    values = load_source_config(_config(tmp_path, LONG_BASE + """values:
  payment_methods: [CARD, VOUCHER]
  payment_aliases: {礼品卡: VOUCHER, alipay: CARD}
  gender: {先生: M}
  cancelled_statuses: [已作废]
""")).values

    assert values.payment_methods == ["CASH", "MOBILE", "CHEQUE", "STORED_VALUE", "TRANSFER", "CARD", "VOUCHER"]
    assert values.payment_aliases["储值卡"] == "STORED_VALUE"  # a shop's prepaid card is no bank card
    assert values.payment_aliases["礼品卡"] == "VOUCHER"
    assert values.payment_aliases["微信支付"] == "MOBILE"  # the built-in entries stay
    # The shop's spelling replaces the built-in entry with the same token (tokens compare upper-cased).
    assert values.payment_aliases["alipay"] == "CARD" and "ALIPAY" not in values.payment_aliases
    assert values.gender["先生"] == "M" and values.gender["女"] == "F"
    assert values.cancelled_statuses[-1] == "已作废" and "已取消" in values.cancelled_statuses


def test_replace_defaults_uses_only_the_shops_values(tmp_path: Path) -> None:
    values = load_source_config(_config(tmp_path, LONG_BASE + """values:
  replace_defaults: true
  payment_methods: [CARD, CASH]
  payment_aliases: {刷卡: CARD}
  cancelled_statuses: [VOID]
""")).values

    assert values.payment_methods == ["CARD", "CASH"]
    assert values.payment_aliases == {"刷卡": "CARD"}
    assert values.cancelled_statuses == ["VOID"]
    assert values.gender["女性"] == "F"  # a key the shop does not give keeps the built-in map


def test_replace_defaults_checks_aliases_against_the_shops_own_methods(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE + "values:\n  replace_defaults: true\n  payment_methods: [CARD]\n"
                             "  payment_aliases: {微信: MOBILE}\n")

    assert "values.payment_aliases: target(s) ['MOBILE'] are not in values.payment_methods" in _error(path)


def test_replace_defaults_must_be_a_yaml_boolean(tmp_path: Path) -> None:
    path = _config(tmp_path, LONG_BASE + "values:\n  replace_defaults: 'all'\n")

    assert f"{path}: values.replace_defaults: Input should be a valid boolean" in _error(path)


# --- segments: support rules for names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        pytest.param("  min_segment_buyer: 20\n", "segments.min_segment_buyer",
                     "unknown key; did you mean 'min_segment_buyers'?", id="unknown-key"),
        pytest.param("  min_category_buyers_share: 1.5\n", "segments.min_category_buyers_share",
                     "less than or equal to 1", id="share-above-one"),
        pytest.param("  min_segment_buyers: 0\n", "segments.min_segment_buyers", "greater than or equal to 1",
                     id="no-buyers"),
        pytest.param("  min_profile_coverage_for_names: -0.1\n", "segments.min_profile_coverage_for_names",
                     "greater than or equal to 0", id="negative-coverage"),
    ],
)
def test_name_support_settings_are_validated(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = _config(tmp_path, LONG_BASE + "segments:\n" + text)

    message = _error(path)

    assert f"{path}: {key}: " in message
    assert fragment in message


def test_name_support_settings_have_documented_defaults(tmp_path: Path) -> None:
    segments = load_source_config(_config(tmp_path, LONG_BASE)).segments

    assert (segments.min_category_buyers_share, segments.min_segment_buyers,
            segments.min_profile_coverage_for_names) == (0.02, 30, 0.5)
    tuned = load_source_config(_config(tmp_path, LONG_BASE + "segments:\n  min_segment_buyers: 10\n")).segments
    assert tuned.min_segment_buyers == 10
