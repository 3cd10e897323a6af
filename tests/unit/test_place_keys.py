"""Which column names read as a place rather than a person, on the names real exports give their columns."""

import pytest

from assets.staging.place_keys import names_a_place, place_key_warning, place_named_customer_ids
from pipelines.core.config import SourceConfig


@pytest.mark.parametrize("column", [
    "ship-postal-code",  # Amazon All Orders Report
    "Shipping Zip",  # Shopify orders export
    "Ship Zipcode",  # Etsy sold orders
    "ShipPostalCode", "POSTCODE", "Billing City", "ship-state", "Shipping Province",
    "收货地址", "收货人城市", "邮编", "省份",
])
def test_place_columns_are_named_so(column):
    assert names_a_place(column)


@pytest.mark.parametrize("column", [
    "Customer ID",  # UCI Online Retail II
    "cardid",  # the seed table
    "buyer-email", "Username (Buyer)", "买家会员名", "会员编号", "Customer Email", "Phone", "收货人手机号",
    "statement_id", "CustomerCode", "addressee",
    # An e-mail's or an IP's address is no place (init maps an e-mail column as the customer id).
    "Email Address", "Buyer Email Address", "billing_email_address", "邮箱地址", "电子邮件地址", "IP Address",
])
def test_buyer_columns_are_not_places(column):
    assert not names_a_place(column)


def config_mapping(orders_customer: str, customers_customer: str | None = None) -> SourceConfig:
    section = {"path": "customers.csv", "columns": {"customer_id": customers_customer}} if customers_customer else None
    return SourceConfig.model_validate({
        "name": "t", "shape": "long",
        "orders": {"path": "orders.csv", "columns": {"customer_id": orders_customer, "order_id": "amazon-order-id"}},
        **({"customers": section} if section else {})})


def test_the_warning_names_every_section_that_maps_a_place():
    config = config_mapping("ship-postal-code", "Postcode")
    assert place_named_customer_ids(config) == [("orders.columns.customer_id", "ship-postal-code"),
                                                ("customers.columns.customer_id", "Postcode")]
    assert place_key_warning(config).startswith(
        "orders.columns.customer_id ('ship-postal-code'), customers.columns.customer_id ('Postcode') names a place")
    assert place_key_warning(config_mapping("buyer-email")) is None
