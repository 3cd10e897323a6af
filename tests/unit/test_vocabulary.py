"""The built-in bilingual retail vocabulary: big enough, one language per label, one meaning per spelling, and it
knows the codes of the demo, the seed table and the online-retail example."""

from pathlib import Path

import pytest
import yaml

from assets.segments.labels import category_group, category_label, category_names, payment_kind, payment_names
from assets.segments.vocabulary import VOCABULARY_FILE, has_cjk, load_vocabulary, normalize
from pipelines.demo.vocabulary import CATEGORIES, WIDE_CATEGORIES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_vocabulary_is_large_and_every_label_is_in_its_language():
    vocabulary = load_vocabulary()
    assert len(vocabulary.categories.terms) >= 150
    for lexicon in (vocabulary.categories, vocabulary.payments):
        for term in lexicon.terms.values():
            assert has_cjk(term.zh), term.key
            assert term.en and not has_cjk(term.en), term.key
            assert term.synonyms, term.key
    assert all(t.group in vocabulary.groups for t in vocabulary.categories.terms.values())
    assert all(has_cjk(zh) and not has_cjk(en) for zh, en in vocabulary.groups.values())


def test_every_synonym_resolves_to_its_own_entry_only():
    # Read the file again, without the loader's index, so a spelling shared by two entries shows here too.
    document = yaml.safe_load(VOCABULARY_FILE.read_text(encoding="utf-8"))
    for section in ("categories", "payments"):
        owners: dict[str, set[str]] = {}
        for key, entry in document[section].items():
            for spelling in (key, entry["zh"], entry["en"], *entry["synonyms"]):
                owners.setdefault(normalize(spelling), set()).add(key)
        assert {s: k for s, k in owners.items() if len(k) > 1} == {}, section
        lexicon = getattr(load_vocabulary(), section)
        for key, entry in document[section].items():
            for spelling in entry["synonyms"]:
                assert lexicon.resolve(spelling).key == key, spelling


@pytest.mark.parametrize("spelling", ["生鲜肉类", "鲜肉", "肉类", "freshmeat", "fresh meat", "Fresh_Meat",
                                      " FRESH-MEAT ", "ｆｒｅｓｈ　ｍｅａｔ", "meat"])
def test_matching_ignores_case_blanks_separators_and_full_width(spelling):
    term = load_vocabulary().categories.resolve(spelling)
    assert (term.key, term.group) == ("fresh_meat", "fresh_food")


def test_demo_seed_and_online_retail_codes_resolve():
    online = yaml.safe_load((EXAMPLES / "online_retail.yaml").read_text(encoding="utf-8"))["category_labels"]
    seed = yaml.safe_load((EXAMPLES / "baskets.yaml").read_text(encoding="utf-8"))
    seed_codes = next(v for v in seed.values() if isinstance(v, dict) and "category_columns" in v)["category_columns"]
    assert list(seed_codes) == list(WIDE_CATEGORIES)
    for code in {*CATEGORIES, *seed_codes, *online, "household"}:
        assert load_vocabulary().categories.resolve(code) is not None, code
    # Chinese exports of the test fixtures (tests/fixtures/exports) too.
    for code in ("生鲜果蔬", "乳品", "休闲零食", "日用百货", "母婴用品", "酒水", "咖啡冲饮", "烘焙糕点", "冷冻食品"):
        assert load_vocabulary().categories.resolve(code) is not None, code
    # A supermarket's departments as a Chinese POS names them, found by a new-user trial: each gets both labels.
    for code, labels in (("生鲜", ("生鲜", "fresh food")), ("日化", ("日化", "toiletries & cleaning")),
                         ("家清", ("清洁用品", "cleaning"))):
        entry = load_vocabulary().categories.resolve(code)
        assert entry is not None and (entry.zh, entry.en) == labels, code


def test_shop_labels_win_and_unknown_codes_label_only_their_own_language():
    assert category_names("stationery", {"stationery": ("贺卡文具", "cards, stationery & wrap")}) == (
        "贺卡文具", "cards, stationery & wrap")
    assert category_names("freshmeat") == ("鲜肉", "fresh meat")
    assert category_names("生鲜肉类") == ("生鲜肉类", "fresh meat")  # the shop's own Chinese word stays
    assert category_names("螺蛳粉") == ("螺蛳粉", None)
    assert category_names("xg_01") == (None, "xg_01")
    assert category_label("xg_01") == ("xg_01", "xg_01")  # tables and charts still show every category
    # A code the vocabulary does not know is placed by the labels the shop gave it.
    assert category_group("xg_01", {"xg_01": ("生鲜肉类", "fresh meat")}) == "fresh_food"
    # A label in the wrong script is no label.
    assert category_names("x1", {"x1": ("x1", "fresh")}) == (None, "fresh")


def test_payment_methods_have_labels_and_kinds():
    assert payment_names("WECHAT") == payment_names("微信") == ("微信支付", "WeChat Pay payers")
    assert payment_kind("支付宝") == payment_kind("mobile") == "mobile"
    assert payment_names("paypal") == (None, "paypal payers")


def test_a_department_of_every_drink_and_a_code_saying_only_accessories_are_named_as_such():
    # A trial's POS department 酒饮 held bottled water beside beer; its 'accessories' held tote bags.
    categories = load_vocabulary().categories
    assert [(t.zh, t.en) for t in map(categories.resolve, ["酒饮", "酒水饮料", "accessories", "首饰配饰"])] == [
        ("酒水饮料", "drinks & alcohol"), ("酒水饮料", "drinks & alcohol"), ("配饰", "accessories"),
        ("首饰", "jewellery")]


@pytest.mark.parametrize(("code", "zh", "en", "group"), [
    # Found by a new-user trial: a Chinese POS's 蔬菜水果 (the vocabulary knows 水果蔬菜) and 烟酒 had no label.
    ("蔬菜水果", "蔬菜水果", "vegetables & fruit", "fresh_food"),
    ("烟酒", "烟酒", "tobacco & alcohol", "tobacco"),
    ("Tea & Coffee", "茶、咖啡", "tea & coffee", "beverages"),
    ("日化百货", "日化百货", "toiletries & cleaning, household", "household"),
    # Two groups: labelled, but counted towards neither group.
    ("肉禽蛋品", "肉禽蛋品", "fresh meat & eggs", None),
])
def test_a_department_of_two_known_terms_gets_their_labels(code, zh, en, group):
    assert category_names(code) == (zh, en)
    assert category_group(code) == group


def test_compounds_need_parts_of_two_characters_and_one_way_to_split():
    categories = load_vocabulary().categories
    assert categories.resolve("茶叶蛋") is None  # tea eggs are not 茶叶 + 蛋
    assert categories.resolve("pineapple") is None
    assert load_vocabulary().payments.resolve("微信支付宝") is None  # payments never combine


def test_coffee_beans_and_tea_leaves_are_not_the_drinks():
    # A coffee shop's retail beans were "coffee" beside its coffee drinks: one segment's bundle said coffee twice.
    categories = load_vocabulary().categories
    assert categories.resolve("Coffee Beans").key == "coffee_beans" != categories.resolve("Coffee").key
    assert category_names("tea") == ("茶", "tea") and category_names("tea leaves") == ("茶叶", "tea leaves")


def test_a_stored_value_card_by_its_usual_spellings():
    # A trial's POS paid with 储值卡, which resolved to nothing: init suggested CARD for it.
    for code in ("储值卡", "STORED_VALUE", "Stored Value Card"):
        assert (payment_names(code), payment_kind(code)) == (("储值卡支付", "stored-value card payers"), "stored_value")


@pytest.mark.parametrize(("code", "names", "group"), [
    # A live-stream shop's category paths (快手小店): the English label is the known leaf's, the group the nearest
    # part the vocabulary knows, and the Chinese label the shop's own path.
    ("数码配件/充电器", ("数码配件/充电器", "phone accessories"), "electronics"),
    ("食品饮料/方便速食", ("食品饮料/方便速食", "instant food"), "convenience_food"),
    ("男装/夹克", ("男装/夹克", "menswear, coats & jackets"), "apparel"),
    # A leaf nobody knows gets no English label of its parent's: its siblings would share it and merge in charts.
    ("女装/毛衣", ("女装/毛衣", None), "apparel"),
    ("home > kitchen > knives", (None, "home > kitchen > knives"), "home_kitchen"),
    ("t-shirts", ("上衣", "tops & T-shirts"), "apparel"),  # a hyphen is no path separator
])
def test_a_category_path_is_labelled_by_its_leaf_and_grouped_by_its_nearest_known_part(code, names, group):
    assert category_names(code) == names
    assert category_group(code) == group
