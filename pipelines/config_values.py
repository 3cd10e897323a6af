"""`persona init`: the values init reads off the sample (pipelines/config_init.py drafts the rest): payment
spellings, gender tokens, home-owner tokens, a monthly income, bands it cannot read, and the order and line statuses
that are no purchase (values.cancelled_statuses, values.refunded_line_statuses)."""

from __future__ import annotations

import re
from collections import Counter

from assets.staging.bands import read_band
from pipelines.config_draft import Draft, Section
from pipelines.config_match import FLAG_TOKENS
from pipelines.config_money import POINT_DECIMALS, decimal_comma_reading, mixed_currencies
from pipelines.config_yaml import scalar
from pipelines.core.config import DEFAULT_VALUE_MAPS

# Payment spellings guessed from their words. CHECK as a word only ("PayPal Express Checkout" is no cheque); PAY
# not in PAYMENT ("Shopify Payments" is no wallet: Shopify's card processing, as Stripe is).
PAYMENT_GUESSES = ((re.compile(r"STORE[ _-]?CREDIT|PREPAID|储值|预付"), "STORED_VALUE"),
                   (re.compile(r"GIFT|VOUCHER|COUPON|POINT|礼品|积分|券"), None),
                   (re.compile(r"CASH|现金|\bCOD\b"), "CASH"), (re.compile(r"CHEQUE|\bCHECK\b|支票"), "CHEQUE"),
                   # A wallet's transfer (微信转账) is the wallet's; before CARD, whose BANK would take a bank
                   # transfer or deposit for a card.
                   (re.compile(r"微信|支付宝|WECHAT|ALIPAY"), "MOBILE"),
                   # Online banking (Shopee, Malaysia's FPX, 网银) pays from the bank account, as a transfer does.
                   (re.compile(r"TRANSFER|DEPOSIT|\bWIRE\b|\bBACS\b|ONLINE[ _-]?BANKING|\bFPX\b|转账|汇款|网银"),
                    "TRANSFER"),
                   # Etsy's online_cc: a credit card online.
                   (re.compile(r"CREDIT|DEBIT|VISA|MASTER|AMEX|BANK|SHOPIFY PAYMENTS|STRIPE|(?:^|[ _-])CC(?:$|[ _-])"
                               r"|刷卡|银行|银联|信用|借记"), "CARD"),
                   (re.compile(r"PAY(?!MENT)|WALLET|MOBILE|QR|微信|支付宝|扫码|手机"), "MOBILE"))
STORED_VALUE_GUESS = re.compile(r"GIFT|STORE CREDIT|PREPAID|储值|预付|礼品卡")
GENDER_GUESSES = {"先生": "M", "男士": "M", "MAN": "M", "MR": "M", "BOY": "M", "女士": "F", "小姐": "F",
                  "WOMAN": "F", "MS": "F", "MRS": "F", "GIRL": "F"}
OWNER_TRUE = re.compile(r"OWN|有房|自有|有")
OWNER_FALSE = re.compile(r"RENT|NONE|无|租|没有")
# Statuses whose orders are no purchase, set aside as cancelled: cancelled, voided or refunded in full, and not paid
# yet (等待付款, pending, WooCommerce's on-hold: the customer may never pay). A partial refund (partially_refunded,
# 部分退款) is still a purchase.
# Spanish and Portuguese (Mercado Libre: Cancelada por el comprador, Devolución finalizada; reembolsado, estornado).
CANCELLED_GUESS = re.compile(r"CANCEL|VOID|REFUND|取消|关闭|退款|作废|ANULAD|DEVOLU|DEVOLVID|REEMBOLS|ESTORNAD")
PARTIAL = re.compile(r"PARTIAL|PARCIAL|部分")  # Reembolso parcial, Devolução parcial
# A refund asked for and not yet granted (退款中, 申请退款, Devolución en camino), or turned down (退款关闭,
# 拒绝退款): the sale stands.
REFUND_UNDECIDED = re.compile(r"退款中|申请退款|退款申请|退款关闭|拒绝退款"
                              r"|REFUND[ _-]?(REQUESTED|PENDING|REJECTED|DECLINED)"
                              r"|(DEVOLU|REEMBOLS)\w*( DE \w+)?( \w+)? (EN CAMINO|EN CURSO|EN PROCESO|SOLICITAD"
                              r"|PENDIENTE|PENDENTE|EM ANDAMENTO|RECHAZAD|CANCELAD)")  # a return on its way
UNPAID_GUESS = re.compile(r"UNPAID|NOT[ _-]?PAID|PENDING|AWAITING[ _-]?PAYMENT|ON[ _-]?HOLD"
                          r"|待付款|未付款|待支付|未支付|等待(买家)?付款"  # Taobao: 等待买家付款
                          r"|PAGO PENDIENTE|PENDIENTE DE PAGO|ESPERANDO (EL )?PAGO|NO PAGAD|AGUARDANDO PAGAMENTO"
                          r"|PAGAMENTO PENDENTE|N[ÃA]O PAG")  # Mercado Libre: Pago pendiente
# Line statuses (Youzan 售后状态, Taobao 退款状态) of a line refunded or returned in the end: not one asked for
# (退款中), turned down (退款关闭) or never asked (没有申请退款), whose lines are still bought.
# Order statuses of a sale: paid, on its way or received. A status that reads as neither this nor no purchase (JD's
# 锁定, an order held for review) counts as a purchase unless listed, so init asks (a trial's 锁定 orders were 2.7%
# of the revenue, 11 customers had no other order).
# 未完成, INCOMPLETE, UNSUCCESSFUL, no pagada
NEGATED = re.compile(r"未|没有|不|失败|\bNOT\b|\bUN|INCOMPLETE|FAIL|\bNO\b|\bNÃO\b|\bSIN\b")
PURCHASE_GUESS = re.compile(r"COMPLET|SUCCESS|\bPAID\b|FULFIL|SHIP|DELIVER|PROCESSING|CLOSED WON|FINISH|DONE|PARTIAL"
                            r"|完成|成功|已付款|已支付|付款成功|发货|收货|签收|配送|出库|部分"
                            r"|ENTREGAD|ENVIAD|PAGAD|ACREDITAD|CONCRETAD|APROBAD|EN CAMINO|PARA ENVIAR"
                            r"|PARA ENVIO|PRONTO|PARCIAL")  # Spanish, Portuguese: Listo para enviar (paid, to ship)
# Shopee's Return / Refund Status: Refund Completed (its Request Rejected is a sale).
REFUNDED_LINE_GUESS = re.compile(r"^(REFUNDED|RETURNED|(REFUND|RETURN)[ _-]?(COMPLETED?|SUCCESS(FUL)?|DONE)"
                                 r"|退款成功|已退款|退货成功|已退货|退款完成|退货完成)$")


def _field_values(draft: Draft, field_name: str) -> list[tuple[Section, str, list[str]]]:
    found = []
    for section in draft.sections:
        if field_name in section.matches:
            column = section.matches[field_name].column
            found.append((section, column, section.sniffed.values(column)))
    return found


def read_values(draft: Draft) -> None:
    """values: what the sample shows of payment spellings, gender, home owner tokens, income period, bands."""
    builtin = {k.upper() for k in DEFAULT_VALUE_MAPS["payment_aliases"]} | set(DEFAULT_VALUE_MAPS["payment_methods"])
    aliases: dict[str, str] = {}
    for section, column, values in _field_values(draft, "payment_method"):
        counts = Counter(values)
        for value, n in counts.most_common():
            if value.upper() in builtin or value in aliases:
                continue
            guess = next((code for pattern, code in PAYMENT_GUESSES if pattern.search(value.upper())), None)
            if guess:
                aliases[value] = guess
            else:
                # A gift card or store credit is prepaid with the shop; otherwise no code is suggested over another.
                code = "STORED_VALUE" if STORED_VALUE_GUESS.search(value.upper()) else \
                    "|".join(DEFAULT_VALUE_MAPS["payment_methods"])
                draft.undecided.append(
                    f"values.payment_aliases: {section.name} {column} value {value!r} ({n} row(s) in the sample) is "
                    "no built-in payment code; its rows are quarantined unless you map it (values.payment_aliases: "
                    "{" + value + ": " + code + "}) or list it in values.payment_methods")
    if aliases:
        draft.values["payment_aliases"] = aliases
        draft.value_notes["payment_aliases"] = "guessed from the names (CHECK): " + ", ".join(aliases)
    genders: dict[str, str] = {}
    for section, column, values in _field_values(draft, "gender"):
        known = {k.upper() for k in DEFAULT_VALUE_MAPS["gender"]}
        for value, n in Counter(values).most_common():
            if value.upper() in known or value in genders:
                continue
            if value.upper() in GENDER_GUESSES:
                genders[value] = GENDER_GUESSES[value.upper()]
            else:
                draft.undecided.append(f"values.gender: {section.name} {column} value {value!r} ({n} row(s)) is "
                                       "neither M nor F; its rows are quarantined unless you map it in values.gender "
                                       f"(to M, F, or null for not known: {{{scalar(value)}: null}})")
    if genders:
        draft.values["gender"] = genders
        draft.value_notes["gender"] = "guessed (CHECK)"
    _home_owner(draft)
    _decimal_comma(draft)
    _mixed_currencies(draft)
    for _section, column, _found in _field_values(draft, "income"):
        if re.search(r"月|month", column.lower()):
            draft.values["income_period"] = "month"
            draft.value_notes["income_period"] = f"{column} is a monthly income: staging multiplies it by 12"
    for field_name in ("age", "income"):
        for section, column, values in _field_values(draft, field_name):
            unread = Counter(v for v in values if read_band(v, field_name) is None)
            for value, n in unread.most_common(3):
                draft.undecided.append(
                    f"values.bands.{field_name}: {section.name} {column} value {value!r} ({n} row(s)) reads as no "
                    f"number or band; its rows are quarantined unless values.bands.{field_name} names a number")
    for field_name, key, reads_so, what in (("status", "cancelled_statuses", no_purchase, "cancelled"),
                                            ("line_status", "refunded_line_statuses", refunded_line, "refunded")):
        built_in, extra = {s.upper() for s in DEFAULT_VALUE_MAPS[key]}, []
        for section, _column, values in _field_values(draft, field_name):
            seen = sorted(set(values))
            extra += [v for v in seen if v.upper() not in built_in and reads_so(v.upper()) and v not in extra]
            taken = built_in | {e.upper() for e in extra}
            section.extra_notes[field_name] = "statuses seen: " + ", ".join(seen[:12]) + (
                f"; {what}: " + ", ".join(v for v in seen if v.upper() in taken)
                if any(v.upper() in taken for v in seen) else f"; none is a {what} status")
            if field_name == "status":
                _statuses_to_decide(draft, section, _column, values, taken)
        if extra:
            draft.values[key] = extra
            draft.value_notes[key] = "guessed from the names (CHECK)"


def _statuses_to_decide(draft: Draft, section: Section, column: str, values: list[str], taken: set[str]) -> None:
    """A line to decide for the order statuses that read neither as a sale nor as no purchase: they count as sales
    unless listed in values.cancelled_statuses."""
    counts = Counter(values)
    unclear = [v for v in sorted(counts) if v.upper() not in taken and not REFUND_UNDECIDED.search(v.upper())
               and (NEGATED.search(v.upper()) or not PURCHASE_GUESS.search(v.upper()))]
    if unclear:
        listed = ", ".join(f"{v} ({counts[v]:,} row(s))" for v in unclear[:8])
        draft.undecided.append(
            f"values.cancelled_statuses: {section.name} {column} has statuses init cannot tell a sale from: "
            f"{listed}; their orders count as purchases unless you list them in values.cancelled_statuses")


def _decimal_comma(draft: Draft) -> None:
    """values.decimal_comma when a mapped amount or price writes money with a decimal comma (R$ 1.234,56), and a line
    to decide when its points only look like thousands ($ 12.990): read with a point, they make every sum a thousand
    times too small, silently (a trial's Mercado Libre Chile export published 15,257.95 for 15,257,950)."""
    money = [(section, column, values) for field_name in ("amount", "unit_price")
             for section, column, values in _field_values(draft, field_name)]
    # One setting reads every money column: a column written with points (Total 3.00 beside a Unit Price 1,50) would
    # then be no number, so the mix is left to decide.
    pointed = [column for _, column, values in money if any(POINT_DECIMALS.search(v) for v in values)]
    for section, column, values in money:
        found = decimal_comma_reading(values)
        if found is None or draft.values.get("decimal_comma"):
            continue
        if pointed:
            draft.undecided.append(
                f"values.decimal_comma: {section.name} {column} writes money with a decimal comma (e.g. "
                f"{found[0]!r}) and {pointed[0]} with a point: one setting reads both, so convert one of them "
                "first; values.decimal_comma: true reads the comma")
            return
        example, certain = found
        draft.values["decimal_comma"] = True
        draft.value_notes["decimal_comma"] = (f"{column} writes money with a decimal comma (e.g. {example!r})"
                                              if certain else f"{column}'s points separate thousands (CHECK)")
        if not certain:
            draft.undecided.append(
                f"values.decimal_comma: every sampled value of {section.name} {column} with a point has three "
                f"digits after it (e.g. {example!r}): read as thousands ({example!r} is "
                f"{float(re.sub(r'[^0-9]', '', example)):,.0f}); if they are decimals (a currency of three "
                "decimals, such as KWD), remove values.decimal_comma")


def _mixed_currencies(draft: Draft) -> None:
    """A line to decide for a mapped amount or price in more than one currency: a run adds them up as one number."""
    for field_name in ("amount", "unit_price"):
        for section, column, values in _field_values(draft, field_name):
            mixed = mixed_currencies(values)
            if mixed:
                draft.undecided.append(
                    f"{section.key}.columns.{field_name}: {section.name} {column} holds more than one currency "
                    f"({mixed}): a run adds them up as one number; give each currency's orders a config and "
                    "warehouse of their own, or convert them to one currency first")


def no_purchase(status: str) -> bool:
    """Whether an (upper-cased) order status reads as an order that is no purchase: cancelled, refunded in full,
    not paid yet."""
    if REFUND_UNDECIDED.search(status):  # "refund pending" is no unpaid order either
        return False
    cancelled = CANCELLED_GUESS.search(status) is not None and PARTIAL.search(status) is None
    return cancelled or UNPAID_GUESS.search(status) is not None


def refunded_line(status: str) -> bool:
    """Whether an (upper-cased) line status says the line was refunded or returned in the end: 退款成功, not a
    refund asked for (退款中), turned down or withdrawn (退款关闭), nor no refund at all (没有申请退款)."""
    return REFUNDED_LINE_GUESS.search(status) is not None and PARTIAL.search(status) is None


def _home_owner(draft: Draft) -> None:
    true = {t.upper() for t in FLAG_TOKENS.true_tokens}
    false = {t.upper() for t in FLAG_TOKENS.false_tokens}
    for section, column, values in _field_values(draft, "home_owner"):
        seen = sorted(set(values))
        if all(v.upper() in true | false for v in seen):
            continue
        yes = [v for v in seen if v.upper() in true or (OWNER_TRUE.search(v.upper())
                                                         and not OWNER_FALSE.search(v.upper()))]
        no = [v for v in seen if v not in yes and (v.upper() in false or OWNER_FALSE.search(v.upper()))]
        rest = [v for v in seen if v not in yes and v not in no]
        if yes and no:
            draft.values["home_owner"] = {"true_tokens": yes, "false_tokens": no}
            draft.value_notes["home_owner"] = f"{column}: guessed from the names (CHECK)"
        if rest or not (yes and no):
            draft.undecided.append(f"values.home_owner: {section.name} {column} values {rest or seen} are not "
                                   "yes/no tokens init can read; list them in values.home_owner")
