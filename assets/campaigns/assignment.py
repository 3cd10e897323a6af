"""Treatment or control by a salted hash of (campaign, customer): random-looking, reproducible anywhere, and the
same whenever it is computed again. Shared by `persona campaign create` and the demo generator's planted
campaigns (pipelines/demo/campaigns.py), so both split a campaign's customers the same way."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

TREATMENT = "treatment"
CONTROL = "control"
GROUPS = (TREATMENT, CONTROL)
# Recorded with every campaign (campaigns.campaigns.salt); `persona campaign create --salt` chooses another.
DEFAULT_SALT = "persona-campaign-v1"
_SCALE = float(16 ** 15)


def hash_fraction(campaign: str, customer_id: str, salt: str = DEFAULT_SALT) -> float:
    """A number in [0, 1) from SHA-256 of `salt:campaign:customer_id` (its first 60 bits): uniform for any set of
    customers, independent between campaigns, and a function of the three strings only."""
    digest = hashlib.sha256(f"{salt}:{campaign}:{customer_id}".encode()).hexdigest()
    return int(digest[:15], 16) / _SCALE


def assign_group(campaign: str, customer_id: str, holdout: float, salt: str = DEFAULT_SALT) -> str:
    """`control` for the customers whose hash fraction falls below `holdout`, `treatment` for the rest."""
    return CONTROL if hash_fraction(campaign, customer_id, salt) < holdout else TREATMENT


def assign_groups(campaign: str, customer_ids: Iterable[str], holdout: float, salt: str = DEFAULT_SALT) -> list[str]:
    return [assign_group(campaign, customer_id, holdout, salt) for customer_id in customer_ids]
