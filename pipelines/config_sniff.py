"""`persona init`, reading side: tell how an export is written (format, encoding, delimiter, title lines above
the header) and read a sample of its rows through the pipeline's own readers (assets/raw/readers.py), so that a
file init can sniff is a file a run can read.

- encoding: a UTF-16 / UTF-32 byte-order mark (the readers honour it whatever `encoding` says), a UTF-8 one, then
  the first of UTF-8, GBK and GB18030 that decodes the file (assets/raw/lines.py LEGACY_ENCODINGS);
- delimiter: the one of `,` `;` tab `|` that splits the lines into the most rows of one width; else runs of
  spaces and tabs (`whitespace`), as the readers split them;
- header: the first line as wide as the data below it whose names are all present, distinct and not numbers; the
  lines above it are title lines (`skip_rows`).

Then its columns are matched to the contract's fields (`match_columns`): by name in Chinese and English
(VOCABULARY), kept only when the sampled values fit the field (`fits`: order times read with a date format staging
tries, amounts and quantities read as numbers); between columns named alike, the better-filled one. The order time
is when the order was placed (创建时间, 下单时间, created, order date): a payment, shipping, completion or refund
time (付款时间, 发货时间, paid_at, ...) is empty on orders that never got that far, so it is taken only when no
other column fits (`order_time_score`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from assets.raw.lines import LEGACY_ENCODINGS
from assets.raw.readers import (
    SOURCE_FILE,
    SOURCE_ROW,
    WHITESPACE,
    WHITESPACE_RUN,
    IngestError,
    detect_format,
    read_excel_as_text,
    read_json_as_text,
    read_parquet_as_text,
    read_source_file,
    wide_unicode,
)
from assets.staging.typed import DECORATED_MONEY
from pipelines.core.config import FileSource, TokenMap

HEAD_BYTES = 1 << 20  # the sample of a CSV: its first MiB, cut at a line end
ENCODING_PROBE_BYTES = 32 << 20  # the encoding is judged on up to this much of the file
SAMPLE_ROWS = 20_000  # rows of a Parquet, JSON or Excel file looked at
PROBE_LINES = 200  # lines (from the top) that tell the delimiter and the header
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", WHITESPACE: "runs of spaces and tabs"}
NUMBER = re.compile(r"^[+-]?[\d.,:/ -]+$")


class SniffError(ValueError):
    """A file init cannot read; the message names the file."""


@dataclass
class Sniffed:
    """How one file is written, and a sample of its rows as text (columns as the header names them)."""

    path: Path
    format: str
    encoding: str = "utf-8"  # the config value
    encoding_note: str = ""  # what was seen: "UTF-8 with a byte-order mark", "UTF-16 LE (byte-order mark)", ...
    delimiter: str = ","
    skip_rows: int = 0
    title_lines: list[str] = field(default_factory=list)
    sample: pl.DataFrame = field(default_factory=pl.DataFrame)
    whole: bool = True  # the sample is the whole file

    @property
    def columns(self) -> list[str]:
        return [c for c in self.sample.columns if c not in (SOURCE_FILE, SOURCE_ROW)]

    def values(self, column: str) -> list[str]:
        """The column's non-empty values in the sample, trimmed."""
        series = self.sample.get_column(column).drop_nulls().str.strip_chars()
        return [v for v in series.to_list() if v]

    def source(self) -> FileSource:
        return FileSource(path=str(self.path), format=self.format, encoding=self.encoding,
                          delimiter=self.delimiter, skip_rows=self.skip_rows)


def sniff_file(path: Path) -> Sniffed:
    """Sniff one file and read its sample; a file that cannot be read is a SniffError naming it."""
    if not path.is_file():
        raise SniffError(f"{path}: file not found")
    try:
        fmt = detect_format(path, None)
    except IngestError as exc:
        raise SniffError(f"{exc} (init reads .csv, .txt, .tsv, .xlsx, .parquet, .json, .jsonl)") from None
    try:
        if fmt == "csv":
            return _sniff_csv(path)
        if fmt == "excel":
            return _sniff_excel(path)
        frame = read_parquet_as_text(path) if fmt == "parquet" else read_json_as_text(path)
    except IngestError as exc:
        raise SniffError(str(exc)) from None
    if frame.width == 0 or frame.height == 0:
        raise SniffError(f"{path}: no rows to look at")
    return Sniffed(path, fmt, sample=frame.head(SAMPLE_ROWS), whole=frame.height <= SAMPLE_ROWS)


# ------------------------------------------------------------------------------------------------- encoding


def sniff_encoding(path: Path) -> tuple[str, str, str]:
    """(config encoding, the codec that reads the file, what was seen)."""
    wide = wide_unicode(path)
    if wide is not None:
        return "utf-8", wide[0], f"{wide[1]} with a byte-order mark (read as such whatever encoding says)"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", "utf-8-sig", "UTF-8 with a byte-order mark"
    if b"\x00" in head:
        raise SniffError(f"{path}: a NUL byte at the start: not a text file, or UTF-16 without a byte-order mark; "
                         "save it as UTF-8")
    for encoding in ("utf-8", *LEGACY_ENCODINGS):
        if _decodes_whole(path, encoding):
            seen = "UTF-8" if encoding == "utf-8" else f"{encoding.upper()} (a Chinese Windows export)"
            return encoding, encoding, seen
    raise SniffError(f"{path}: neither UTF-8, GBK nor GB18030; save it as UTF-8")


def _decodes_whole(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    read = 0
    try:
        with path.open("rb") as handle:
            while read < ENCODING_PROBE_BYTES and (chunk := handle.read(1 << 20)):
                decoder.decode(chunk)
                read += len(chunk)
            if read < ENCODING_PROBE_BYTES:
                decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- CSV


def _head_text(path: Path, codec: str) -> tuple[str, bool]:
    """The file's first HEAD_BYTES as text, cut after its last complete line; and whether that is the whole."""
    with path.open("rb") as handle:
        data = handle.read(HEAD_BYTES + 1)
    whole = len(data) <= HEAD_BYTES
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(data[:HEAD_BYTES], final=whole)
    text = text.lstrip("\ufeff")
    if not whole:
        cut = max(text.rfind("\n"), 0)
        text = text[:cut + 1]
    return text, whole


def split_line(line: str, delimiter: str) -> list[str]:
    """One line's fields, as the readers split them (whitespace: runs of spaces and tabs, quotes kept whole)."""
    if delimiter == WHITESPACE:
        body = line.strip(" \t")
        if '"' not in body:
            return WHITESPACE_RUN.split(body) if body else []
        try:
            return next(csv.reader([body.replace("\t", " ")], delimiter=" ", skipinitialspace=True))
        except (csv.Error, StopIteration):
            return WHITESPACE_RUN.split(body)
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _probe_lines(text: str) -> list[str]:
    """The first PROBE_LINES non-blank lines; a line whose quote runs over a line break is joined with the next."""
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.count('"') % 2:
            continue
        if pending.strip(" \t,;|"):
            lines.append(pending)
        pending = ""
        if len(lines) >= PROBE_LINES:
            break
    return lines


def _width_score(lines: list[str], delimiter: str) -> tuple[float, int]:
    """(share of the lines as wide as the most common width, that width); width 1 scores nothing."""
    widths = [len(split_line(line, delimiter)) for line in lines]
    if not widths:
        return 0.0, 0
    width, count = Counter(widths).most_common(1)[0]
    return (count / len(widths) if width > 1 else 0.0), width


def sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter that gives the most lines of one width (>1); ties go to the earlier of DELIMITERS, and runs of
    whitespace only win when they split clearly better than any one character."""
    scored = {d: _width_score(lines, d) for d in (*DELIMITERS, WHITESPACE)}
    best = max(DELIMITERS, key=lambda d: (round(scored[d][0], 2), scored[d][1]))
    if scored[WHITESPACE][0] > scored[best][0] + 0.05 or (scored[best][0] == 0 and scored[WHITESPACE][0] > 0):
        return WHITESPACE
    return best if scored[best][0] > 0 else None


def looks_like_header(fields: list[str], width: int) -> bool:
    names = [f.strip() for f in fields]
    if len(names) != width:
        return False
    filled = [n for n in names if n]
    # An unnamed first column (a pandas index) is allowed; any other empty name is a title line's padding.
    if len(filled) < width - (1 if not names[0] else 0) or len(set(filled)) != len(filled):
        return False
    return sum(1 for n in filled if NUMBER.match(n)) <= len(filled) // 4


def header_line(rows: list[list[str]]) -> int:
    """Index of the header among the first rows: the first as wide as most rows below it that reads as names.
    0 when none does (the first line is then taken as the header, as the readers take it)."""
    if not rows:
        return 0
    widths = Counter(len(r) for r in rows)
    width = widths.most_common(1)[0][0]
    for index, row in enumerate(rows[:20]):
        if looks_like_header(row, width):
            return index
    return 0


def _sniff_csv(path: Path) -> Sniffed:
    encoding, codec, note = sniff_encoding(path)
    text, whole = _head_text(path, codec)
    lines = _probe_lines(text)
    if not lines:
        raise SniffError(f"{path}: the file is empty (no header row)")
    delimiter = sniff_delimiter(lines) or ","
    rows = [split_line(line, delimiter) for line in lines]
    header = header_line(rows)
    skip_rows = 0
    title_lines: list[str] = []
    if header:
        # skip_rows counts the file's lines above the header, blank ones included.
        all_lines = text.splitlines()
        skip_rows = all_lines.index(lines[header]) if lines[header] in all_lines else header
        title_lines = [line.strip(" \t,;|") for line in all_lines[:skip_rows] if line.strip(" \t,;|")]
    sniffed = Sniffed(path, "csv", encoding, note, delimiter, skip_rows, title_lines, whole=whole)
    with tempfile.TemporaryDirectory(prefix="persona-init-") as scratch:
        # The sample: the head as UTF-8 (whatever the file's encoding), read by the pipeline's CSV reader.
        head = Path(scratch) / path.name
        head.write_text(text, encoding="utf-8", newline="")
        source = FileSource(path=str(head), format="csv", delimiter=delimiter, skip_rows=skip_rows)
        try:
            sniffed.sample = read_source_file(head, source, Path(scratch))
        except IngestError as exc:
            message = str(exc).replace(str(head), str(path))
            raise SniffError(f"{message} (read as {note}, delimiter {DELIMITER_NAMES[delimiter]}, "
                             f"{skip_rows} title line(s))") from None
    if sniffed.sample.height == 0:
        raise SniffError(f"{path}: a header but no data rows")
    return sniffed


# -------------------------------------------------------------------------------------------------- Excel


def _sniff_excel(path: Path) -> Sniffed:
    try:
        top = pl.read_excel(path, engine="calamine", has_header=False,
                            read_options={"n_rows": PROBE_LINES, "dtypes": "string"})
    except Exception as exc:  # noqa: BLE001 - fastexcel raises its own exception types for every kind of bad file
        raise SniffError(f"{path}: not a readable Excel workbook ({str(exc).splitlines()[0]})") from None
    rows = [[("" if v is None else str(v)) for v in row] for row in top.rows()]
    rows = [r for r in rows if any(v.strip() for v in r)]
    # Trailing empty cells are no columns: the width is that of the filled part.
    rows = [r[:max(i for i, v in enumerate(r) if v.strip()) + 1] for r in rows]
    header = header_line(rows)
    frame = read_excel_as_text(path, FileSource(path=str(path), skip_rows=header))
    frame = frame.with_row_index(SOURCE_ROW, offset=1).filter(
        ~pl.all_horizontal(pl.exclude(SOURCE_ROW).is_null()))
    if frame.height == 0:
        raise SniffError(f"{path}: the first sheet holds no data rows")
    titles = [" ".join(v for v in r if v.strip()) for r in rows[:header]]
    return Sniffed(path, "excel", skip_rows=header, title_lines=titles, sample=frame.head(SAMPLE_ROWS),
                   whole=frame.height <= SAMPLE_ROWS)


def describe(sniffed: Sniffed) -> str:
    """How the file was read, for the YAML comment above its section."""
    parts = [sniffed.format.upper() if sniffed.format != "excel" else "Excel workbook (first sheet)"]
    if sniffed.format == "csv":
        parts.append(sniffed.encoding_note)
        parts.append(f"{DELIMITER_NAMES[sniffed.delimiter]}-separated")
    if sniffed.title_lines:
        shown = "; ".join(repr(t[:40]) for t in sniffed.title_lines[:3])
        parts.append(f"{len(sniffed.title_lines)} title line(s) above the header ({shown})")
    rows = f"{sniffed.sample.height:,} rows" + ("" if sniffed.whole else " sampled from the top")
    parts.append(rows)
    return ", ".join(parts)


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    """Rows as CSV text (tests and examples)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------------------------------- matching columns

# contract field -> (known names, normalised: lower case without blanks and punctuation; a regex a name may
# contain). The field's own name (order_id -> orderid) always matches best.
VOCABULARY: dict[str, tuple[set[str], str]] = {
    "order_id": ({"orderno", "ordernumber", "ordercode", "order", "invoice", "invoiceno", "invoiceid",
                  "invoicenumber", "receipt", "receiptno", "receiptid", "transactionid", "txnid", "txnno",
                  "basketid", "ticketno", "订单号", "订单编号", "订单id", "单号", "订单", "交易号", "交易单号",
                  "小票号", "流水号", "订单编码"},
                 r"^(order|invoice|receipt|basket|txn|transaction|ticket)(id|no|num|number|code|key)$|订单(号|编号|编码)"
                 r"|单号|小票|流水号"),
    "customer_id": ({"customer", "customerno", "customercode", "custid", "custno", "custcode", "memberid",
                     "member", "memberno", "membercard", "membercode", "cardid", "cardno", "card", "loyaltycard",
                     "userid", "user", "uid", "clientid", "client", "buyerid", "buyer", "shopperid", "vipid",
                     "会员号", "会员id", "会员编号", "会员卡号", "会员", "用户id", "用户编号", "客户id", "客户编号",
                     "客户号", "顾客id", "顾客编号", "买家id", "会员卡", "买家会员名", "买家昵称", "会员名", "用户名",
                     "买家账号"},
                    r"^(customer|cust|member|user|client|buyer|shopper|vip|loyalty)(id|no|num|number|code|card|"
                    r"cardno|key)?$|(会员|用户|客户|顾客|买家)(号|id|编号|卡号|编码|账号)$"),
    "order_ts": ({"orderdate", "ordertime", "orderdatetime", "date", "datetime", "time", "timestamp", "ts",
                  "paidat", "paytime", "paymenttime", "paymentdate", "paiddate", "txntime", "txndate",
                  "transactiontime", "transactiondate", "invoicedate", "createdat", "createtime", "created",
                  "purchasedate", "purchasetime", "saledate", "salesdate", "下单时间", "支付时间", "付款时间",
                  "订单时间", "交易时间", "成交时间", "创建时间", "下单日期", "日期", "时间", "购买时间",
                  "订单日期", "消费时间", "订单创建时间", "创建日期", "ordercreated", "ordercreatedat",
                  "createddate", "creationdate", "orderplacedat", "dateordered"},
                 r"date|time|^ts$|at$|时间|日期"),
    "category": ({"productcategory", "categoryname", "cat", "department", "dept", "品类", "类目", "商品类目",
                  "商品品类", "类别", "分类", "商品分类", "一级类目", "大类"},
                 r"categ|类目|品类|分类|类别"),
    "quantity": ({"qty", "items", "itemcount", "count", "units", "pieces", "pcs", "数量", "件数", "购买数量",
                  "商品数量", "销量"}, r"qty|quantit|数量|件数"),
    "amount": ({"sales", "total", "totalamount", "value", "lineamount", "linetotal", "revenue", "paid",
                "paidamount", "payamount", "paymentamount", "subtotal", "netamount", "实付金额", "金额", "订单金额",
                "支付金额", "实付", "销售额", "成交金额", "应付金额", "付款金额", "实收金额", "消费金额"},
               r"amount|total|sales|revenue|金额|实付|实收|销售额"),
    "unit_price": ({"price", "单价", "商品单价", "价格", "售价", "销售单价"}, r"price|单价|价格"),
    "payment_method": ({"payment", "paymenttype", "paytype", "paymethod", "pmethod", "paymode", "paymentmode",
                        "tender", "tendertype", "pay", "支付方式", "付款方式", "支付渠道", "支付类型", "付款类型"},
                       r"^pay(ment)?(method|type|mode|channel)?$|支付方式|付款方式|tender"),
    "channel": ({"saleschannel", "orderchannel", "source", "ordersource", "platform", "渠道", "销售渠道",
                 "订单来源", "来源", "平台"}, r"channel|渠道"),
    "sku": ({"skuid", "skucode", "stockcode", "productid", "productcode", "productno", "itemcode", "itemid",
             "itemno", "barcode", "ean", "upc", "goodsid", "商品编码", "商品编号", "商品id", "货号", "条码", "条形码",
             "sku编码", "商品条码"}, r"sku|stockcode|barcode|商品编(码|号)|条码|货号"),
    "line_id": ({"lineno", "linenumber", "line", "orderline", "行号", "明细号", "明细id", "明细编号"},
                r"^line(no|id|number)$|行号|明细(号|编号)"),
    "status": ({"orderstatus", "state", "orderstate", "订单状态", "状态", "交易状态"}, r"status|状态"),
    "description": ({"desc", "productname", "itemname", "goodsname", "product", "item", "title", "商品名称",
                     "品名", "商品", "商品描述", "商品标题", "名称", "宝贝标题", "宝贝名称"},
                    r"descr|productname|itemname|商品名|品名|宝贝(标题|名称)"),
    "age": ({"agegroup", "ageband", "agerange", "年龄", "年龄段"}, r"^age|年龄"),
    "birth_year": ({"yearofbirth", "yob", "出生年份", "出生年"}, r"birth|出生"),
    "gender": ({"sex", "性别"}, r"gender|性别"),
    "income": ({"householdincome", "annualincome", "yearlyincome", "monthlyincome", "salary", "月收入",
                "年收入", "收入", "家庭收入", "家庭月收入", "家庭年收入"}, r"income|salary|收入"),
    "home_owner": ({"homeown", "ownhome", "homeownership", "housing", "owner", "是否有房", "有房", "房产",
                    "住房"}, r"homeown|有房|房产"),
    "city": ({"城市", "所在城市", "town"}, r"city|城市"),
    "subcategory": ({"subcat", "子类目", "二级类目", "小类", "子分类", "二级分类"}, r"subcat|子类|二级"),
    "brand": ({"品牌", "brandname"}, r"brand|品牌"),
}
WHAT = {"order_id": "an order id", "customer_id": "a customer id", "order_ts": "the order time",
        "category": "a category", "quantity": "a quantity", "amount": "a line amount", "unit_price": "a unit price",
        "payment_method": "a payment method", "channel": "a sales channel", "sku": "a product code",
        "line_id": "a line number within the order", "status": "an order status",
        "description": "a product name", "age": "an age", "birth_year": "a birth year", "gender": "a gender",
        "income": "an income", "home_owner": "home ownership", "city": "a city", "subcategory": "a subcategory",
        "brand": "a brand"}
NUMERIC_FIELDS = ("quantity", "amount", "unit_price")
# A number written as money, by the pattern staging reads amounts with (assets/staging/typed.py, money_number).
MONEY = re.compile(DECORATED_MONEY)
FLAG_TOKENS = TokenMap()
# Date formats tried on the sample with DuckDB's try_strptime, as staging reads them; the first that reads a value
# is the one written. Month-first and day-first forms read the same values when no day is above 12.
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S",
                "%Y/%m/%d %H:%M", "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y",
                "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M",
                "%d.%m.%Y", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日", "%Y%m%d %H:%M:%S",
                "%Y%m%d")
EXCEL_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
# Order-time names (normalised) of a later event than the order being placed: payment, shipping, delivery,
# completion, closing, refund, an edit. Such a column is empty on orders that never got that far (a Taobao order
# closed unpaid, 交易关闭, has no 付款时间), and those rows would be quarantined for want of an order time.
LATER_TIME = re.compile(r"pay|paid|ship|deliver|dispatch|receiv|complet|finish|clos|refund|return|cancel|updat|"
                        r"modif|付款|支付|发货|收货|签收|送达|完成|关闭|结束|退款|退货|取消|修改|更新")
# Names saying when the order was placed (订单创建时间, Order Created At), beyond the usual ones in VOCABULARY.
PLACED_TIME = re.compile(r"order|creat|placed|purchas|invoice|receipt|sale|下单|创建|订单|购买|开单")
CLEARLY_BETTER_FILLED = 0.02  # a share of the sampled rows: an order time filled on this many more is worth a CHECK


def normalise(name: str) -> str:
    return re.sub(r"[\s_\-./()（）:：#\[\]]+", "", name.strip().lower())


@dataclass
class Match:
    field: str
    column: str
    why: str  # for the YAML comment
    doubt: str = ""  # a reason to check the match, printed by init ("to decide: ...")


def reads_as_number(value: str) -> bool:
    """Whether staging would read the text as a quantity or an amount: a plain number, or money (¥1,234.50, 411.75元,
    full-width ￥８８．５０ as its ASCII form)."""
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        float(text)
        return True
    except ValueError:
        return MONEY.fullmatch(text) is not None


def numeric_share(values: list[str]) -> float:
    return sum(1 for v in values if reads_as_number(v)) / len(values) if values else 0.0


class DateCoverage(NamedTuple):
    formats: list[str]  # the formats that read the values, the one reading most first
    share: float  # of the distinct values, read by them or as ISO 8601
    iso_rest: bool  # ISO 8601 reads values the formats do not
    ambiguous: bool  # the values read day-first as well as month-first (no day above 12)
    unread: str | None  # a value nothing reads


def date_coverage(values: list[str]) -> DateCoverage:
    """How the date formats staging tries (DuckDB's try_strptime, then ISO 8601) read a column's values."""
    distinct = sorted(set(values))[:5000]
    if not distinct:
        return DateCoverage([], 0.0, False, False, None)
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE v AS SELECT unnest($values) AS t", {"values": distinct})
        reads = {fmt: {t for (t,) in con.execute("SELECT t FROM v WHERE try_strptime(t, $f) IS NOT NULL",
                                                 {"f": fmt}).fetchall()} for fmt in DATE_FORMATS}
        iso = {t for (t,) in con.execute("SELECT t FROM v WHERE TRY_CAST(t AS TIMESTAMP) IS NOT NULL").fetchall()}
    finally:
        con.close()
    chosen: list[str] = []
    covered: set[str] = set()
    while True:
        fmt = max(DATE_FORMATS, key=lambda f: len(reads[f] - covered))
        if not reads[fmt] - covered:
            break
        chosen.append(fmt)
        covered |= reads[fmt]
    swaps = {f: f.replace("%m/%d/%Y", "%d/%m/%Y") for f in chosen if f.startswith("%m/%d/%Y")}
    ambiguous = bool(swaps) and all(reads[day_first] >= reads[f] for f, day_first in swaps.items())
    read = covered | iso
    unread = next((t for t in distinct if t not in read), None)
    return DateCoverage(chosen, len(read) / len(distinct), bool(iso - covered), ambiguous, unread)


def fits(field_name: str, values: list[str]) -> bool:
    """Whether a column's sampled values can be the field's."""
    if not values:
        return field_name not in ("order_ts", *NUMERIC_FIELDS)
    if field_name in NUMERIC_FIELDS:
        return numeric_share(values) >= 0.8
    if field_name == "order_ts":
        if sum(1 for v in values if EXCEL_SERIAL.match(v)) >= 0.8 * len(values):
            return True
        return date_coverage(values).share >= 0.5
    return True


def name_score(field_name: str, column: str) -> tuple[int, str] | None:
    name = normalise(column)
    known, pattern = VOCABULARY[field_name]
    if column.strip().lower() == field_name or name == field_name.replace("_", ""):
        return 5, "named as the field"
    scored = None
    if name in known:
        scored = 4, f"{column!r} is a usual name for {WHAT[field_name]}"
    elif re.search(pattern, name):
        scored = 2, f"{column!r} reads like {WHAT[field_name]}"
    if field_name == "order_ts" and scored is not None:
        return order_time_score(column, scored)
    return scored


def order_time_score(column: str, scored: tuple[int, str]) -> tuple[int, str]:
    """An order time column's score: a later event's time (LATER_TIME) below every other name, so it is taken
    only when no other column fits; a name that says the order was placed (PLACED_TIME) above a bare date/time."""
    name = normalise(column)
    if LATER_TIME.search(name):
        return 1, (f"{column!r} is a time after the order was placed (paid, shipped, ...), taken as no column "
                   "saying when the order was placed fits")
    if scored[0] == 2 and PLACED_TIME.search(name):
        return 3, f"{column!r} reads like when the order was placed"
    return scored


def match_columns(sniffed: Sniffed, fields: tuple[str, ...], prefer: dict[str, str] | None = None
                  ) -> dict[str, Match]:
    """Contract field -> the column that maps onto it: the best-named column whose values fit, between names
    scored alike the better-filled one, each column and each field used once. `prefer`: field -> a column name to
    take first when the file has it (the customer id the orders file uses)."""
    filled = {column: len(sniffed.values(column)) for column in sniffed.columns}  # non-empty cells in the sample
    candidates = []
    for rank, field_name in enumerate(fields):
        for column in sniffed.columns:
            if not column.strip():
                continue
            scored = name_score(field_name, column)
            if prefer and prefer.get(field_name) == column:
                scored = (6, "the same column as in the orders file")
            if scored is not None:
                candidates.append((-scored[0], rank, -filled[column], column, field_name, scored[1]))
    matches: dict[str, Match] = {}
    used: set[str] = set()
    for _, _, _, column, field_name, why in sorted(candidates):
        if field_name in matches or column in used or not fits(field_name, sniffed.values(column)):
            continue
        matches[field_name] = Match(field_name, column, why)
        used.add(column)
    if "order_ts" in matches:
        others = [c for c in sniffed.columns if c not in used and c.strip() and name_score("order_ts", c)]
        _doubt_order_time(sniffed, matches["order_ts"], others, filled)
    return matches


def _doubt_order_time(sniffed: Sniffed, match: Match, others: list[str], filled: dict[str, int]) -> None:
    """A CHECK when the order time was taken for its name over a clearly better-filled column that fits too: the
    rows it leaves empty are quarantined, and by default a run with over 5% of its rows lacking a key is blocked."""
    rows = sniffed.sample.height or 1
    better = [c for c in others if (filled[c] - filled[match.column]) / rows >= CLEARLY_BETTER_FILLED
              and fits("order_ts", sniffed.values(c))]
    if not better:
        return
    best = max(better, key=lambda c: filled[c])
    taken, other = f"{filled[match.column] / rows:.1%}", f"{filled[best] / rows:.1%}"
    match.doubt = (f"{match.column} is filled on {taken} of the sampled rows, {best} on {other}; rows without an "
                   f"order time are quarantined: if {best} says when the order was placed, map it instead")
    match.why += f"; CHECK: {best} is better filled ({other} of the rows against {taken})"


def flag_columns(sniffed: Sniffed, taken: set[str]) -> tuple[list[str], set[str], set[str]]:
    """Columns holding only flag tokens (T/F, 1/0, Y/N, 是/否), and the true and false tokens seen."""
    true = {t.upper() for t in FLAG_TOKENS.true_tokens}
    false = {t.upper() for t in FLAG_TOKENS.false_tokens}
    flags, seen_true, seen_false = [], set(), set()
    for column in sniffed.columns:
        values = {v.upper() for v in sniffed.values(column)}
        if column in taken or not values or not values <= true | false or len(values) > 2:
            continue
        flags.append(column)
        seen_true |= {v for v in sniffed.values(column) if v.upper() in true}
        seen_false |= {v for v in sniffed.values(column) if v.upper() in false}
    return flags, seen_true, seen_false


def example(sniffed: Sniffed, column: str) -> str:
    values = sniffed.values(column)
    return f"; e.g. {values[0][:30]!r}" if values else "; empty in the sample"
