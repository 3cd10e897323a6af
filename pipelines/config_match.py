"""`persona init`, matching side: which column of a sniffed export (pipelines/config_sniff.py) maps onto which
contract field.

Columns are matched by name in Chinese and English (VOCABULARY), kept only when the sampled values fit the field
(`fits`: order times read with a date format staging tries, amounts and quantities read as numbers); between
columns named alike, a quantity or amount that varies before one constant over the sample (Square's Count, 1 on
every line), an amount after discounts before one before them (Net Sales, 实收金额 before Gross Sales, 金额), then
the better-filled one. The order time is when the order was placed (创建时间, 下单时间,
created, order date): a payment, shipping, completion or refund time (付款时间, 发货时间, paid_at, ...) is empty on
orders that never got that far, so it is taken only when no other column fits (`NAME_RANKS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import duckdb

from assets.raw.mapping import MIDNIGHT
from assets.staging.typed import english_month_names, names_months
from pipelines.config_money import reads_as_number
from pipelines.config_sniff import Sniffed
from pipelines.core.config import TokenMap

# contract field -> (known names, normalised: lower case without blanks and punctuation; a regex a name may
# contain). The field's own name (order_id -> orderid) always matches best.
VOCABULARY: dict[str, tuple[set[str], str]] = {
    "order_id": ({"orderno", "ordernumber", "ordercode", "order", "invoice", "invoiceno", "invoiceid",
                  "invoicenumber", "receipt", "receiptno", "receiptid", "transactionid", "txnid", "txnno",
                  "basketid", "ticketno", "订单号", "订单编号", "订单id", "单号", "订单", "交易号", "交易单号",
                  "小票号", "流水号", "订单编码", "单据号", "单据编号", "单据编码", "小票编号", "流水编号"},
                 # A platform's or a channel's order id (Amazon's amazon-order-id, merchant-order-id).
                 r"^(order|invoice|receipt|basket|txn|transaction|ticket)(id|no|num|number|code|key)$"
                 r"|^[a-z]+order(id|no|number)$|订单(号|编号|编码)"
                 r"|单号|单据(号|编号|编码)|小票|流水号"),
    "customer_id": ({"customer", "customerno", "customercode", "custid", "custno", "custcode", "memberid",
                     "member", "memberno", "membercard", "membercode", "cardid", "cardno", "card", "loyaltycard",
                     "userid", "user", "uid", "clientid", "client", "buyerid", "buyer", "shopperid", "vipid",
                     "会员号", "会员id", "会员编号", "会员卡号", "会员", "用户id", "用户编号", "客户id", "客户编号",
                     "客户号", "顾客id", "顾客编号", "买家id", "会员卡", "买家会员名", "买家昵称", "会员名", "用户名",
                     "买家账号", "customeruser", "customeruserid", "下单账号", "下单帐号", "下单用户", "username",
                     "usernamebuyer", "buyerusername"},  # Shopee's Username (Buyer)
                    r"^(customer|cust|member|user|client|buyer|shopper|vip|loyalty)(id|no|num|number|code|card|"
                    r"cardno|key)?$|(会员|用户|客户|顾客|买家|下单)(号|id|编号|卡号|编码|账号|帐号)$"),
    "order_ts": ({"orderdate", "ordertime", "orderdatetime", "date", "datetime", "time", "timestamp", "ts",
                  "paidat", "paytime", "paymenttime", "paymentdate", "paiddate", "txntime", "txndate",
                  "transactiontime", "transactiondate", "invoicedate", "createdat", "createtime", "created",
                  "purchasedate", "purchasetime", "saledate", "salesdate", "下单时间", "支付时间", "付款时间",
                  "订单时间", "交易时间", "成交时间", "创建时间", "下单日期", "日期", "时间", "购买时间",
                  "订单日期", "消费时间", "订单创建时间", "创建日期", "ordercreated", "ordercreatedat",
                  "createddate", "creationdate", "orderplacedat", "dateordered"},
                 r"date|time|^ts$|at$|时间|日期"),
    # A till's department (部门, 部类, 柜组: 生鲜, 日化, 粮油) is the category a POS export has.
    "category": ({"productcategory", "categoryname", "cat", "department", "dept", "品类", "类目", "商品类目",
                  "商品品类", "类别", "分类", "商品分类", "一级类目", "大类", "部门", "部类", "柜组", "商品部门",
                  "品类名称", "大类名称", "类目名称", "分类名称", "商品大类", "部门名称", "部类名称", "柜组名称"},
                 r"categ|类目|品类|分类|类别|部门|部类|柜组|大类"),
    "quantity": ({"qty", "items", "itemcount", "count", "units", "pieces", "pcs", "数量", "件数", "购买数量",
                  "商品数量", "销量"}, r"qty|quantit|数量|件数"),
    "amount": ({"sales", "total", "totalamount", "value", "lineamount", "linetotal", "revenue", "paid",
                "paidamount", "payamount", "paymentamount", "subtotal", "netamount", "实付金额", "金额", "订单金额",
                "支付金额", "实付", "销售额", "成交金额", "应付金额", "付款金额", "实收金额", "消费金额"},
               r"amount|total|sales|revenue|金额|实付|实收|销售额"),
    # A line's own price names first (Shopify's Lineitem price, JD's 京东价): an order-level amount is no line's.
    "unit_price": ({"price", "单价", "商品单价", "价格", "售价", "销售单价", "lineitemprice", "itemprice", "京东价",
                    "成交单价", "零售价", "商品价格", "soldfor"}, r"price|单价|价格"),  # eBay's Sold For
    # WooCommerce writes "Payment Method Title" (the gateway's name shown to the buyer) beside its id.
    "payment_method": ({"payment", "paymenttype", "paytype", "paymethod", "pmethod", "paymode", "paymentmode",
                        "tender", "tendertype", "pay", "paymentmethodtitle", "支付方式", "付款方式", "支付渠道",
                        "支付类型", "付款类型"},
                       r"^pay(ment)?(method|type|mode|channel)?(title|name)?$|支付方式|付款方式|tender"),
    "channel": ({"saleschannel", "orderchannel", "source", "ordersource", "platform", "渠道", "销售渠道",
                 "订单来源", "来源", "平台"}, r"channel|渠道"),
    "sku": ({"skuid", "skucode", "stockcode", "productid", "productcode", "productno", "itemcode", "itemid",
             "itemno", "barcode", "ean", "upc", "goodsid", "商品编码", "商品编号", "商品id", "货号", "条码", "条形码",
             "sku编码", "商品条码"}, r"sku|stockcode|barcode|商品编(码|号)|条码|货号"),
    # A marketplace's sub-order (抖店's 子订单编号: one per item of an order) is a line id too.
    "line_id": ({"lineno", "linenumber", "line", "orderline", "行号", "明细号", "明细id", "明细编号", "子订单编号",
                 "子订单号", "子订单id", "orderitemid", "orderlineid", "lineitemid"},
                r"^line(no|id|number)$|行号|明细(号|编号)|子订单(号|编号|id)"),
    "status": ({"orderstatus", "state", "orderstate", "订单状态", "状态", "交易状态"}, r"status|状态"),
    # A line's own refund or after-sales status beside the order's (Youzan 售后状态, Taobao 退款状态): a line refunded
    # while the rest of its order stands. A fulfilment or shipping status is neither.
    "line_status": ({"售后状态", "退款状态", "退货状态", "商品退款状态", "售后", "refundstatus", "returnstatus",
                     "lineitemrefundstatus", "itemrefundstatus"},
                    r"售后状态|^售后$|退款状态|退货状态|refund(ed)?status|returnstatus"),  # not 售后单号, 售后金额
    # When an order was cancelled (Shopify's Cancelled at): set, the order is no purchase whatever its payment status.
    "cancelled_at": ({"cancelledat", "canceledat", "cancelleddate", "canceleddate", "cancellationdate",
                      "cancellationtime", "cancelledtime", "canceltime", "取消时间", "订单取消时间", "取消日期"},
                     r"^cancel+(ed|ation)?(at|date|time)$|取消(时间|日期)"),
    "description": ({"desc", "productname", "itemname", "goodsname", "product", "item", "title", "商品名称",
                     "品名", "商品", "商品描述", "商品标题", "名称", "宝贝标题", "宝贝名称",
                     "itemtitle", "producttitle", "listingtitle"},  # eBay's Item Title
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
# Spanish and Portuguese names, as Latin American marketplaces write them (Mercado Libre's Ventas report: "# de
# venta", Fecha de venta, Comprador, Unidades, "Ingresos por productos (BRL)", "Precio unitario de venta de la
# publicación (BRL)", Estado, "Título de la publicación", Canal de venta), normalised as above.
IBERIAN_NAMES: dict[str, tuple[set[str], str]] = {
    "order_id": ({"deventa", "númerodeventa", "numerodeventa", "iddeventa", "númerodepedido", "numerodepedido",
                  "iddelpedido", "númerodopedido", "numerodopedido", "pedido"},
                 r"^(n[úu]mero|n[º°o]|id)?d(e|el|o)(venta|pedido)$"),
    "customer_id": ({"comprador", "cliente", "iddelcliente", "iddocliente", "idcliente", "iddelcomprador"},
                    r"^(id)?(del|do)?(comprador|cliente)$"),
    "order_ts": ({"fechadeventa", "fecha", "fechadelpedido", "fechadecompra", "datadavenda", "datadopedido",
                  "datadacompra"}, r"^fecha|^data(da|do)(venda|pedido|compra)"),
    "quantity": ({"unidades", "cantidad", "quantidade", "unidadesvendidas"}, r"cantidad|quantidade|^unidades"),
    "amount": ({"ingresosporproductos", "importe", "monto", "importetotal", "montototal", "valortotal",
                "receitaporprodutos"}, r"^ingresosporproductos|^importe|^monto|^receitaporprodutos|^valortotal"),
    "unit_price": ({"precio", "preciounitario", "preço", "preçounitário", "valorunitario", "valorunitário"},
                   r"^precio|^preço|preciounitario|valorunit"),
    "status": ({"estado", "situación", "situação", "estadodelaventa", "estadodelpedido"},
               r"^estado(de(la|l)?(venta|pedido))?$|^situaci|^situaç"),
    "description": ({"títulodelapublicación", "titulodelapublicacion", "título", "titulo", "producto", "produto",
                     "nombredelproducto", "títulodoanúncio"}, r"^t[íi]tulo|^producto$|^produto$|nombredelproducto"),
    "payment_method": ({"formadepago", "métododepago", "metododepago", "mediodepago", "formadepagamento",
                        "meiodepagamento"}, r"formadepag|m[ée]tododepago|mediodepago|meiodepagamento"),
    "channel": ({"canaldeventa", "canal", "canaldevenda"}, r"^canal"),
}
for _field, (_names, _pattern) in IBERIAN_NAMES.items():
    VOCABULARY[_field] = (VOCABULARY[_field][0] | _names, f"{VOCABULARY[_field][1]}|{_pattern}")
WHAT = {"order_id": "an order id", "customer_id": "a customer id", "order_ts": "the order time",
        "category": "a category", "quantity": "a quantity", "amount": "a line amount", "unit_price": "a unit price",
        "payment_method": "a payment method", "channel": "a sales channel", "sku": "a product code",
        "line_id": "a line number within the order", "status": "an order status",
        "line_status": "a line's refund status", "cancelled_at": "when the order was cancelled",
        "description": "a product name", "age": "an age", "birth_year": "a birth year", "gender": "a gender",
        "income": "an income", "home_owner": "home ownership", "city": "a city", "subcategory": "a subcategory",
        "brand": "a brand"}
NUMERIC_FIELDS = ("quantity", "amount", "unit_price")
# A name whose last word is an identifier's (Sales Record Number, Item No., Order ID, 商品编号): a number of records,
# never money or a quantity. On the name as written, a word at a time: "Amount Paid" ends in "id" only as letters.
IDENTIFIER_NAME = re.compile(r"(?:^|[\s_\-.#/(])(?:[Nn]umber|NUMBER|[Nn]um|NUM|[Nn]o|NO|[Nn]r|NR|[Ii][Dd]|[Cc]ode"
                             r"|CODE)\.?\)?$|[a-z](?:Number|Num|No|Nr|ID|Id|Code)$|(编号|单号|序号|编码)$")
FLAG_TOKENS = TokenMap()
# Date formats tried on the sample with DuckDB's try_strptime, as staging reads them; the first that reads a value
# is the one written. Month-first and day-first forms read the same values when no day is above 12. A format with
# %z reads a time with its offset (Shopify's `2024-03-05 14:22:10 +0800`), which staging converts to
# orders.timezone.
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S",
                "%Y/%m/%d %H:%M", "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y",
                "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M",
                "%d.%m.%Y", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日", "%Y%m%d %H:%M:%S",
                "%Y%m%d", "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z", "%Y/%m/%d %H:%M:%S %z",
                # Two-digit years (Etsy's Sale Date 12/30/23): %y reads 00-68 as 20xx and 69-99 as 19xx.
                "%m/%d/%y %H:%M:%S", "%m/%d/%y %H:%M", "%m/%d/%y", "%d/%m/%y %H:%M:%S", "%d/%m/%y %H:%M", "%d/%m/%y",
                "%d.%m.%y %H:%M", "%d.%m.%y",
                # English month names (eBay's Sale Date Mar-15-24; 15-Mar-2024; Mar 15, 2024).
                "%b-%d-%y", "%b-%d-%Y", "%d-%b-%y", "%d-%b-%Y", "%d-%b-%Y %H:%M", "%d %b %Y", "%d %b %Y %H:%M",
                "%b %d, %Y", "%b %d, %Y %H:%M", "%b %d, %Y %I:%M %p",
                # Spanish and Portuguese month names, read as English ones (typed.FOREIGN_MONTHS): Mercado Libre's
                # "15 de marzo de 2024 10:32 hs.".
                "%d de %B de %Y %H:%M hs.", "%d de %B de %Y %H:%M", "%d de %B de %Y", "%d/%b/%Y")
EXCEL_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
# Order-time names (normalised) of a later event than the order being placed: payment, shipping, delivery,
# completion, closing, refund, an edit. Such a column is empty on orders that never got that far (a Taobao order
# closed unpaid, 交易关闭, has no 付款时间), and those rows would be quarantined for want of an order time.
LATER_TIME = re.compile(r"pay|paid|ship|deliver|dispatch|receiv|complet|finish|clos|refund|return|cancel|updat|"
                        r"modif|付款|支付|发货|收货|签收|送达|完成|关闭|结束|退款|退货|取消|修改|更新"
                        r"|entreg|encamino|revisi|pago|pagament|env[ií]o|devoluc|reembols|recib")  # Fecha entregado
# Names saying when the order was placed (订单创建时间, Order Created At), beyond the usual ones in VOCABULARY.
PLACED_TIME = re.compile(r"order|creat|placed|purchas|invoice|receipt|sale|下单|创建|订单|购买|开单")
# Status names (normalised) of something else than the order: a line's, a shipment's or a refund's status
# (Lineitem fulfillment status, 发货状态, 退款状态) says nothing of whether the order is a purchase. A payment status
# (Shopify's Financial Status: paid, refunded, pending) does.
OTHER_STATUS = re.compile(r"lineitem|item|fulfil|ship|deliver|refund|return|物流|发货|配送|退款|退货|售后|商品")
PAYMENT_STATUS = re.compile(r"financ|pay|paid|支付|付款")
# Order numbers as Shopify writes them (its `Name` column: #1001, #SH-1001): a name that is no person's.
ORDER_NUMBER = re.compile(r"^#[A-Za-z0-9-]+$")
EMAIL_NAME = re.compile(r"email|邮箱")
# Amount names (normalised) after discounts (Square's Net Sales, 实收金额: what the customer paid for the line) and
# before them (Gross Sales, 原价金额): between amounts named alike, the net one is the line's amount.
NET_AMOUNT = re.compile(r"^net|net(sales|amount|total|revenue|price)|实收|实付|折后")
GROSS_AMOUNT = re.compile(r"^gross|gross(sales|amount|total|revenue)|原价|折前")
CUSTOMER_PAID = re.compile(r"实付|(customer|buyer)paid|paidbycustomer")
# Amount names (normalised) of a part of an order's money beside its goods: a discount, coupon, fee, tax, shipping,
# a refund, a platform subsidy, points. Never a line's amount: a trial's 抖店 export had its 优惠总金额 (total
# discount) mapped as the amount, and Etsy's Discount Amount, which set aside 21% and 80% of the lines as free (their
# discount was 0) and counted the discounts as the revenue of the rest. An amount after discounts (优惠后金额,
# Amount after discount) is a line's amount.
AMOUNT_PARTS = (("a discount", re.compile(r"discount|coupon|voucher|rebate|优惠|折扣|减免|立减|券|红包"
                                          r"|descuento|desconto|cup[óo]n|cupom")),
                ("shipping", re.compile(r"shipping|freight|postage|运费|邮费|配送费|快递费|env[ií]o|flete|frete")),
                ("a tax or fee", re.compile(r"tax|税|(?<!cof)fees?(?!d)|手续费|佣金|commission"
                                            r"|impuesto|imposto|cargo|tarifa|comisi[óo]n|comiss[ãa]o|costo")),
                ("a refund", re.compile(r"refund|退款|售后|reembols|anulaci|devoluc|estorno")),
                ("a subsidy or points", re.compile(r"subsidy|补贴|积分|points")))
# Qualifiers of an amount that only say what it includes or when it is taken: after or before discounts (优惠后金额,
# 券后金额, Amount before discount), with tax or shipping included or excluded (含税金额, 实付金额(含运费), 价税合计,
# Total (incl. tax), Subtotal excl. tax), a net amount (Net Sales): such a column is an amount, not a part of one.
AFTER_DISCOUNTS = re.compile(r"(优惠|折扣|折|券)后|(after|before|less|pre)(discount|coupon)|discounted|含|价税"
                             r"|incl|excl|^net(sales|amount|total|revenue)")


def amount_part(column: str) -> str | None:
    """What part of an order's money a column is named as (AMOUNT_PARTS: "a discount", "shipping", ...), or None for
    a name that may be a line's amount."""
    name = normalise(column)
    if AFTER_DISCOUNTS.search(name):
        return None
    return next((kind for kind, pattern in AMOUNT_PARTS if pattern.search(name)), None)


CLEARLY_BETTER_FILLED = 0.02  # a share of the sampled rows: an order time filled on this many more is worth a CHECK


def normalise(name: str) -> str:
    return re.sub(r"[\s_\-./()（）:：#\[\]]+", "", name.strip().lower())


@dataclass
class Match:
    field: str
    column: str
    why: str  # for the YAML comment
    doubt: str = ""  # a reason to check the match, printed by init ("to decide: ...")


def numeric_share(values: list[str]) -> float:
    return sum(1 for v in values if reads_as_number(v)) / len(values) if values else 0.0


class DateCoverage(NamedTuple):
    formats: list[str]  # the formats that read the values, the one reading most first
    share: float  # of the distinct values, read by them or as ISO 8601
    iso_rest: bool  # ISO 8601 reads values the formats do not
    ambiguous: bool  # the values read day-first as well as month-first (no day above 12)
    unread: str | None  # a value nothing reads


STRAY_FORMAT_VALUES = 50  # distinct values above which a further format must read two of them


def date_coverage(values: list[str]) -> DateCoverage:
    """How the date formats staging tries (DuckDB's try_strptime, then ISO 8601) read a column's values."""
    distinct = sorted(set(values))[:5000]
    if not distinct:
        return DateCoverage([], 0.0, False, False, None)
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE v AS SELECT t, {english_month_names('t')} AS named FROM "
                    "(SELECT unnest($values) AS t)", {"values": distinct})
        # %Y reads a year of one or two digits too (12/30/23 as the year 23, 01/05/24 with %Y/%m/%d as the year 1):
        # such a reading is no reading of the value, which a %y format reads. A system's "no date" (0001-01-01)
        # reads as ISO 8601.
        # Staging reads a format naming months on the text with other languages' names in English (named).
        reads = {}
        for fmt in DATE_FORMATS:
            read = "named" if names_months([fmt]) else "t"
            reads[fmt] = {t for (t,) in con.execute(
                f"SELECT t FROM v WHERE try_strptime({read}, $f) IS NOT NULL"
                + (f" AND year(try_strptime({read}, $f)) >= 1000" if "%Y" in fmt else ""), {"f": fmt}).fetchall()}
        iso = {t for (t,) in con.execute("SELECT t FROM v WHERE TRY_CAST(t AS TIMESTAMP) IS NOT NULL").fetchall()}
    finally:
        con.close()
    chosen: list[str] = []
    covered: set[str] = set()
    while True:
        fmt = max(DATE_FORMATS, key=lambda f: len(reads[f] - covered))
        added = len(reads[fmt] - covered)
        # A format that reads a single value of many is a stray row's, not the export's: a trial's Shopee file, day
        # first, had one 07/12/2023 14:03 that put a month-first format in (with a CHECK). It is left unread: a run
        # quarantines its row as no date, and check shows it.
        if not added or (chosen and added < 2 and len(distinct) > STRAY_FORMAT_VALUES):
            break
        chosen.append(fmt)
        covered |= reads[fmt]
    # Staging tries the formats in order, and %Y reads 12/30/23 as the year 23 where %y refuses 12/30/2023: a file
    # mixing both years needs the %y formats first.
    chosen.sort(key=lambda f: "%y" not in f)
    swaps = {f: f.replace("%m/%d/", "%d/%m/") for f in chosen if f.startswith("%m/%d/")}
    ambiguous = bool(swaps) and all(reads[day_first] >= reads[f] for f, day_first in swaps.items())
    read = covered | iso
    unread = next((t for t in distinct if t not in read), None)
    return DateCoverage(chosen, len(read) / len(distinct), bool(iso - covered), ambiguous, unread)


def fits(field_name: str, values: list[str]) -> bool:
    """Whether a column's sampled values can be the field's. A column empty in the whole sample (Shopify's Receipt
    Number) fits none: mapped, it would leave every row without the field."""
    if not values:
        return False
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
    if field_name == "payment_method" and name in ("paymentmethodtitle", "paymentmethodname"):
        # WooCommerce writes the gateway's id as Payment Method (bacs, cod, ppcp-gateway) and what the buyer chose
        # as Payment Method Title (Direct bank transfer, Cash on delivery): the title is the one to read.
        return 6, f"{column!r} is the payment method as the buyer chose it, taken before a gateway's id"
    if column.strip().lower() == field_name or name == field_name.replace("_", ""):
        return 5, "named as the field"
    if field_name == "amount" and amount_part(column):
        return None
    if field_name in NUMERIC_FIELDS and IDENTIFIER_NAME.search(column.strip()):
        return None  # eBay's Sales Record Number is no amount: its numbers count records, not money
    scored = None
    if name in known:
        scored = 4, f"{column!r} is a usual name for {WHAT[field_name]}"
    elif re.search(pattern, name):
        scored = 2, f"{column!r} reads like {WHAT[field_name]}"
    if field_name in NAME_RANKS and scored is not None:
        return ranked(NAME_RANKS[field_name], column, scored)
    return scored


def value_score(field_name: str, column: str, values: list[str]) -> tuple[int, str] | None:
    """A column no name rule matches, taken for its values when no column is named like the field: order numbers
    (#1001) as the order id, e-mail addresses as the customer id (personal data: hashing it is suggested)."""
    if field_name == "order_id" and looks_like_order_numbers(values):
        return 1, f"{column!r} holds order numbers, as Shopify's Name does"
    if field_name == "customer_id" and EMAIL_NAME.search(normalise(column)) and values and sum(
            1 for v in values if "@" in v) >= 0.9 * len(values):
        return 1, (f"{column!r} holds e-mail addresses, taken as no column is named like a customer id; CHECK: "
                   f"personal data, hash it (privacy.pii_columns: {{{column}: hash}})")
    return None


def looks_like_order_numbers(values: list[str]) -> bool:
    return bool(values) and all(ORDER_NUMBER.match(v) for v in values)


@dataclass(frozen=True)
class NameRank:
    """How a field ranks columns named alike: a name matching `demote` below every other name (taken only when no
    other column fits), one matching `promote` above a bare name that only reads like the field."""

    demote: re.Pattern
    demoted: str  # why, after the column's name
    promote: re.Pattern
    promoted: str


NAME_RANKS = {
    "order_ts": NameRank(LATER_TIME, "is a time after the order was placed (paid, shipped, ...), taken as no column "
                                     "saying when the order was placed fits",
                         PLACED_TIME, "reads like when the order was placed"),
    "status": NameRank(OTHER_STATUS, "is the status of a line, shipment or refund, taken as no column holds the "
                                     "order's status",
                       PAYMENT_STATUS, "reads like the order's payment status"),
}


def ranked(rank: NameRank, column: str, scored: tuple[int, str]) -> tuple[int, str]:
    """A column's name score after the field's NameRank."""
    name = normalise(column)
    if rank.demote.search(name):
        return 1, f"{column!r} {rank.demoted}"
    if scored[0] == 2 and rank.promote.search(name):
        return 3, f"{column!r} {rank.promoted}"
    return scored


def constant(values: list[str]) -> bool:
    """One value on every sampled row of several (Square's Count: 1 on every line, whatever its Qty)."""
    return len(values) > 1 and len(set(values)) == 1


def value_rank(field_name: str, column: str, values: list[str]) -> tuple[int, int]:
    """Between columns named alike for a field, which one holds it, lowest first: a quantity, amount or price
    constant over the sample after one that varies; an amount named net (after discounts) before a plain one,
    and a plain one before a gross one; among net ones, what the customer paid (用户实付, 顾客实付) before what the shop
    received (商家实收: a platform's commission and subsidies taken off or added, which a customer did not spend)."""
    net = 2
    if field_name == "amount":
        name = normalise(column)
        net = 0 if CUSTOMER_PAID.search(name) else 1 if NET_AMOUNT.search(name) else 3 if GROSS_AMOUNT.search(name) \
            else 2
    return int(field_name in NUMERIC_FIELDS and constant(values)), net


def rival_note(field_name: str, taken: str, rival: str, values: dict[str, list[str]]) -> str:
    """What tells `taken` from `rival` as the field, '' when the names alone did: the rival's constant value, or
    which one is the amount after discounts."""
    if field_name in NUMERIC_FIELDS and constant(values[rival]) and not constant(values[taken]):
        return f"{rival} is {values[rival][0]} on every sampled row"
    if field_name == "amount" and NET_AMOUNT.search(normalise(taken)) and not NET_AMOUNT.search(normalise(rival)):
        return f"{taken} is the amount after discounts" + (
            f", {rival} before them" if GROSS_AMOUNT.search(normalise(rival)) else "")
    paid = CUSTOMER_PAID.search(normalise(taken)) and not CUSTOMER_PAID.search(normalise(rival))
    if field_name == "amount" and paid and NET_AMOUNT.search(normalise(rival)):
        return f"{taken} is what the customer paid, {rival} what the shop received"
    return ""


def match_columns(sniffed: Sniffed, fields: tuple[str, ...], prefer: dict[str, str] | None = None,
                  refuse: dict[str, set[str]] | None = None) -> dict[str, Match]:
    """Contract field -> the column that maps onto it: the best-named column whose values fit; between names
    scored alike the one value_rank puts first (a varying quantity, a net amount), then the better-filled one; each
    column and each field used once. `prefer`: field -> a column name to take first when the file has it (the
    customer id the orders file uses); `refuse`: field -> columns not to take for it (an order total as the line
    amount)."""
    values = {column: sniffed.values(column) for column in sniffed.columns}
    filled = {column: len(found) for column, found in values.items()}  # non-empty cells in the sample
    candidates = []
    for rank, field_name in enumerate(fields):
        for column in sniffed.columns:
            if not column.strip():
                continue
            scored = name_score(field_name, column) or value_score(field_name, column, values[column])
            if prefer and prefer.get(field_name) == column:
                scored = (6, "the same column as in the orders file")
            if scored is not None:
                candidates.append((-scored[0], rank, value_rank(field_name, column, values[column]),
                                   -filled[column], column, field_name, scored[1]))
    matches: dict[str, Match] = {}
    used: set[str] = set()
    for score, _, _, _, column, field_name, why in sorted(candidates):
        if field_name in matches or column in used or column in (refuse or {}).get(field_name, ()):
            continue
        if not fits(field_name, values[column]):
            continue
        # A column named as well that the values or the name put after this one: say why it is left out.
        notes = [rival_note(field_name, column, c[4], values) for c in candidates
                 if c[5] == field_name and c[0] == score and c[4] != column and c[4] not in used]
        matches[field_name] = Match(field_name, column, "; ".join([why, *filter(None, notes)]))
        used.add(column)
    return matches


def named_like(sniffed: Sniffed, column: str, fields: tuple[str, ...], matches: dict[str, Match]) -> str:
    """Why a column named like one of the fields is not mapped, for the line saying so: another column holds the
    field (and what tells them apart), or its values do not fit; '' when its name is no field's."""
    for field_name in fields:
        if field_name == "amount" and amount_part(column) and re.search(VOCABULARY["amount"][1], normalise(column)):
            taken = matches.get(field_name)
            return f"{amount_part(column)}, not a line amount" + (f"; amount takes {taken.column}" if taken else "")
        if not name_score(field_name, column):
            continue
        taken = matches.get(field_name)
        if taken is not None:
            values = {c: sniffed.values(c) for c in (column, taken.column)}
            note = rival_note(field_name, taken.column, column, values)
            return f"named like {WHAT[field_name]} too; {field_name} takes {taken.column}" + (f"; {note}" if note
                                                                                              else "")
        values = sniffed.values(column)
        if values and not fits(field_name, values):
            return f"named like {WHAT[field_name]}, but its values ({values[0][:30]!r}) do not fit"
    return ""


# An order time given as a date column and a time-of-day column (Square's Date and Time, 销售日期 and 销售时间):
# init maps both, `order_ts: [Date, Time]`, which the raw layer joins into one text (assets/raw/mapping.py).
# An Excel date cell reads as its midnight (2026-10-31 00:00:00) and a bare time cell on calamine's day 1899-12-31
# (assets/raw/mapping.py, MIDNIGHT and DAY_BEFORE_TIME, which the raw layer strips when it joins the two).
DATE_ONLY = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}$|^\d{4}年\d{1,2}月\d{1,2}日$"
                       rf"|{MIDNIGHT}")
TIME_OF_DAY = re.compile(r"^(1899-12-3[01][ T])?\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s?[AaPp][Mm])?$")
TIME_NAME = re.compile(r"time|时间|时刻")


def time_of_day_column(sniffed: Sniffed, matches: dict[str, Match]) -> str | None:
    """The column holding the time of day of an order time mapped to a date-only column: unmapped, named like a
    time, every sampled value a time of day (14:05:09, 2:05 PM), filled on at least as many rows as the date.
    None when the order time already has its time, or no column fits."""
    if "order_ts" not in matches:
        return None
    dates = sniffed.values(matches["order_ts"].column)
    if not dates or not all(DATE_ONLY.match(value) for value in dates):
        return None
    taken = {match.column for match in matches.values()}
    for column in sniffed.columns:
        values = sniffed.values(column)
        if column not in taken and TIME_NAME.search(normalise(column)) and len(values) >= len(dates) \
                and all(TIME_OF_DAY.match(value) for value in values):
            return column
    return None


def doubt_order_time(sniffed: Sniffed, matches: dict[str, Match]) -> None:
    """A CHECK when the order time was taken for its name over a clearly better-filled column that fits too: the
    rows it leaves empty are quarantined, and by default a run with over 5% of its rows lacking a key is blocked.
    Judged on the sample as staging reads it (after orders.fill_down)."""
    match = matches.get("order_ts")
    if match is None:
        return
    used = {m.column for m in matches.values()}
    others = [c for c in sniffed.columns if c not in used and c.strip() and name_score("order_ts", c)]
    filled = {c: len(sniffed.values(c)) for c in [match.column, *others]}
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
