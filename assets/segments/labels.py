"""Bilingual labels for the words segment names and reports are built from.

A shop's own categories can be labelled in its source config (`category_labels`); unknown codes fall back to
the code itself in both languages, so a name is never empty.
"""


CATEGORY_LABELS: dict[str, tuple[str, str]] = {
    "fruitveg": ("蔬果", "fruit & veg"),
    "freshmeat": ("鲜肉", "fresh meat"),
    "dairy": ("乳品", "dairy"),
    "cannedveg": ("蔬菜罐头", "canned veg"),
    "cannedmeat": ("肉类罐头", "canned meat"),
    "frozenmeal": ("速冻食品", "frozen meals"),
    "beer": ("啤酒", "beer"),
    "wine": ("葡萄酒", "wine"),
    "softdrink": ("软饮", "soft drinks"),
    "fish": ("水产", "fish"),
    "confectionery": ("糖果", "confectionery"),
    "bakery": ("烘焙", "bakery"),
    "coffee": ("咖啡", "coffee"),
    "snacks": ("零食", "snacks"),
    "household": ("日用品", "household"),
    "babycare": ("母婴", "baby care"),
}

# Payment method -> (zh, en) descriptor of customers who prefer it.
PAYMENT_LABELS: dict[str, tuple[str, str]] = {
    "card": ("刷卡支付", "card payers"),
    "cash": ("现金支付", "cash payers"),
    "mobile": ("移动支付", "mobile payers"),
    "cheque": ("支票支付", "cheque payers"),
}

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


def category_label(code: str, overrides: dict[str, tuple[str, str]] | None = None) -> tuple[str, str]:
    overrides = overrides or {}
    return overrides.get(code) or CATEGORY_LABELS.get(code) or (code, code)


def payment_label(code: str) -> tuple[str, str]:
    return PAYMENT_LABELS.get(code.lower(), (f"{code.upper()}支付", f"{code.lower()} payers"))
