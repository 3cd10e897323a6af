"""Bilingual labels for the words segment names and reports are built from.

Category and payment codes are looked up in the built-in vocabulary (vocabulary.yaml, see
assets/segments/vocabulary.py); a shop's own `category_labels` (source config) win over it. A label must be written
in its language: a zh label holds Chinese characters, an en label none, so a raw Latin code never lands in a
Chinese name and a Chinese code never in an English one. A code the vocabulary does not know labels only the
language of its own script (螺蛳粉 is a zh label, garden_tools an en one); `category_names` returns None for the
other language, and the name leaves such a category out (see naming.descriptors).
"""

import re

from assets.segments.vocabulary import has_cjk, load_vocabulary, normalize

# Feature -> ((zh, en) when clearly above the population, (zh, en) when clearly below).
PROFILE_DESCRIPTORS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "age": (("年长", "Senior"), ("年轻", "Young")),
    "income": (("高收入", "High income"), ("低收入", "Low income")),
    "total_spend": (("高消费", "High spend"), ("低消费", "Low spend")),
    "n_orders": (("高频", "Frequent"), ("低频", "Occasional")),
    "avg_basket_value": (("大单", "Big baskets"), ("小单", "Small baskets")),
    "recency_days": (("久未购买", "Lapsing"), ("近期活跃", "Recently active")),
    "is_home_owner": (("有房", "Home owners"), ("租房", "Renters")),
    "is_female": (("女性为主", "Mostly women"), ("男性为主", "Mostly men")),
}

FALLBACK_NAME = ("大众客群", "Mainstream shoppers")
# The separators of a category path (快手小店's 女装/连衣裙, Home > Kitchen, 食品｜饮料), never a hyphen: t-shirts.
CATEGORY_PATH = re.compile(r"\s*(?:/|>|\||›|»|\\|｜|／|＞)\s*")


def usable(text: str | None, language: str) -> str | None:
    """`text` if it can stand in a `language` name: zh needs Chinese characters, en must have none."""
    if not text or not text.strip():
        return None
    text = text.strip()
    return text if has_cjk(text) == (language == "zh") else None


def _own_script(code: str) -> tuple[str | None, str | None]:
    """What an unknown code says by itself: its own language only."""
    code = code.strip()
    return (code, None) if has_cjk(code) else (None, code or None)


def _override(code: str, overrides: dict | None) -> tuple[str, str] | None:
    """The shop's label for `code`: exactly as written, else by the vocabulary's matching rules."""
    if not overrides:
        return None
    if code in overrides:
        return tuple(overrides[code])
    wanted = normalize(code)
    return next((tuple(v) for k, v in overrides.items() if normalize(k) == wanted), None)


def _resolve(code: str, parents: bool = False):
    """The vocabulary's term for a category code; for a path the vocabulary does not know whole (女装/连衣裙), the
    term of its leaf (连衣裙: dresses & skirts; a trial's live-stream shop printed 女装/连衣裙 and 数码配件/充电器
    raw in its English report). With `parents`, else the nearest parent's (女装): a group, never a label, since
    sibling leaves would then share their parent's label and merge in the charts."""
    categories = load_vocabulary().categories
    term = categories.resolve(code)
    if term is not None or not CATEGORY_PATH.search(code):
        return term
    parts = [part for part in CATEGORY_PATH.split(code.strip()) if part]
    if not parts:
        return None
    if not parents:
        return categories.resolve(parts[-1])
    return next((found for found in map(categories.resolve, reversed(parts)) if found), None)


def category_names(code: str, overrides: dict | None = None) -> tuple[str | None, str | None]:
    """(zh, en) labels of a category, None for a language it has no label in."""
    shop = _override(code, overrides)
    if shop:
        return usable(shop[0], "zh"), usable(shop[1], "en")
    term = _resolve(code)
    if term is None:
        zh, en = _own_script(code)
        return usable(zh, "zh"), usable(en, "en")
    # A Chinese code the vocabulary knows keeps the shop's own word in Chinese (生鲜肉类, not 鲜肉).
    return (code.strip() if has_cjk(code) else term.zh), term.en


def category_group(code: str, overrides: dict | None = None) -> str | None:
    """The vocabulary group of a category: from its code, else from the labels the shop gave it."""
    categories = load_vocabulary().categories
    term = _resolve(code, parents=True)
    if term is None:
        shop = _override(code, overrides) or ()
        term = next((t for t in map(categories.resolve, shop) if t), None)
    return term.group if term else None


def category_label(code: str, overrides: dict[str, tuple[str, str]] | None = None) -> tuple[str, str]:
    """(zh, en) for tables and charts, which must show every category: the code stands in for a missing label."""
    zh, en = category_names(code, overrides)
    return zh or code, en or code


def payment_names(code: str) -> tuple[str | None, str | None]:
    """(zh, en) descriptor of customers who prefer a payment method, None for a language it has no label in."""
    term = load_vocabulary().payments.resolve(code)
    if term is not None:
        return term.zh, term.en
    zh, en = _own_script(code)
    return usable(zh and f"{zh}支付", "zh"), usable(en and f"{en} payers", "en")


def payment_kind(code: str) -> str | None:
    """card, cash, mobile, ... of a payment method (WeChat Pay and Alipay are mobile), for archetype rules."""
    term = load_vocabulary().payments.resolve(code)
    return term.group if term else None


def payment_label(code: str) -> tuple[str, str]:
    zh, en = payment_names(code)
    return zh or f"{code}支付", en or f"{code} payers"
