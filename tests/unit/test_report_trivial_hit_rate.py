"""A hit rate of recommendations says nothing when the top n a customer has not bought are all the categories they
have not bought: a trial's shop had 4 categories, and its report gave a measured 100% beside popularity's 100%."""

from types import SimpleNamespace

import polars as pl

from assets.report.facts import FactBook
from assets.report.sections_predict import section_next_category

EVALUATION = {"run_id": "r1", "status": "evaluated", "customers_evaluated": 93, "hit_rate": 1.0,
              "popularity_hit_rate": 1.0, "lift_over_popularity": 1.0, "top_n": 3, "horizon_days": 30,
              "published_source": "popularity", "min_lift_over_popularity": 1.1}


def said(category_count: int) -> list[str]:
    data = SimpleNamespace(detailed=[SimpleNamespace(segment_id=1)], recommendation_eval=EVALUATION,
                           bundles=pl.DataFrame(), category_count=category_count)
    book = FactBook()
    section = section_next_category(data, book)
    return [sentence.text(book, "en") for sentence in section.paragraphs["en"]]


def test_with_few_categories_the_hit_rate_is_said_to_prove_nothing():
    assert said(4)[1] == ("But the orders hold only 4 categories: the top 3 a customer has not bought are all the "
                          "categories they have not bought, so any new category counts as a hit, and this hit rate "
                          "cannot tell good recommendations from any list.")
    assert not any("cannot tell" in sentence for sentence in said(5))
