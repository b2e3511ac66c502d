"""What a registry would cost a month on ACR's price list: the SKU's daily fee over an average month, plus
storage beyond what the SKU includes, billed per GiB per day.

The defaults are ACR's published list prices in US dollars (azure.microsoft.com/pricing/details/container-
registry, and the worked example on learn.microsoft.com's "Azure Container Registry service tiers" page);
`--prices FILE` or CARGOHOLD_PRICES replace any of them. See docs/cli.md for the file's shape.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cargohold.cli.errors import ConfigError

GIB = 1024**3


@dataclass(frozen=True)
class SkuPrice:
    per_day: float
    included_gib: float


@dataclass(frozen=True)
class PriceList:
    currency: str
    days_per_month: float
    storage_per_gib_day: float
    skus: dict[str, SkuPrice]


DEFAULT_PRICES = PriceList(
    currency="USD",
    days_per_month=30.42,
    storage_per_gib_day=0.003,
    skus={"Basic": SkuPrice(0.167, 10), "Standard": SkuPrice(0.667, 100), "Premium": SkuPrice(1.667, 500)},
)


@dataclass(frozen=True)
class Estimate:
    sku: str
    prices: PriceList
    stored_gib: float

    @property
    def sku_price(self) -> SkuPrice:
        return self.prices.skus[self.sku]

    @property
    def sku_fee(self) -> float:
        return self.sku_price.per_day * self.prices.days_per_month

    @property
    def extra_gib_days(self) -> float:
        return max(0.0, self.stored_gib - self.sku_price.included_gib) * self.prices.days_per_month

    @property
    def storage_fee(self) -> float:
        return self.extra_gib_days * self.prices.storage_per_gib_day

    @property
    def total(self) -> float:
        return self.sku_fee + self.storage_fee

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.prices.currency, "sku": self.sku, "days": self.prices.days_per_month,
            "skuPricePerDay": self.sku_price.per_day, "skuFee": round(self.sku_fee, 2),
            "storedGiB": round(self.stored_gib, 3), "includedStorageGiB": self.sku_price.included_gib,
            "extraGiBDays": round(self.extra_gib_days, 3), "storagePricePerGiBDay": self.prices.storage_per_gib_day,
            "storageFee": round(self.storage_fee, 2), "total": round(self.total, 2),
        }

    def line(self) -> str:
        currency, days = self.prices.currency, f"{self.prices.days_per_month:g}"
        return (f"Estimated monthly cost: {self.total:.2f} {currency} = {self.sku} {self.sku_price.per_day:g}/day "
                f"x {days} days ({self.sku_fee:.2f}) + {self.extra_gib_days:.2f} GiB-days beyond the "
                f"{self.sku_price.included_gib:g} GiB included x {self.prices.storage_per_gib_day:g}/GiB/day "
                f"({self.storage_fee:.2f}); {self.stored_gib:.2f} GiB stored")


def estimate(prices: PriceList, sku: str, stored_bytes: int) -> Estimate:
    if sku not in prices.skus:
        raise ConfigError(f"the price list has no price for the SKU {sku}")
    return Estimate(sku, prices, stored_bytes / GIB)


def load_prices(path: Path | None) -> PriceList:
    """The defaults, with what `path` (else $CARGOHOLD_PRICES) sets laid over them."""
    if path is None and os.environ.get("CARGOHOLD_PRICES"):
        path = Path(os.environ["CARGOHOLD_PRICES"])
    if path is None:
        return DEFAULT_PRICES
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the price list {path}: {exc}") from None
    try:
        return _merge(DEFAULT_PRICES, document)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"the price list {path} is not in the expected shape ({exc}); see docs/cli.md") from None


def _merge(base: PriceList, document: dict[str, Any]) -> PriceList:
    if not isinstance(document, dict):
        raise TypeError("the top level must be an object")
    skus = dict(base.skus)
    for name, fields in (document.get("skus") or {}).items():
        current = skus.get(name, SkuPrice(0.0, 0.0))
        skus[name] = SkuPrice(_number(fields.get("perDay", current.per_day)),
                              _number(fields.get("includedStorageGiB", current.included_gib)))
    return replace(base, skus=skus,
                   currency=str(document.get("currency", base.currency)),
                   days_per_month=_number(document.get("daysPerMonth", base.days_per_month)),
                   storage_per_gib_day=_number(document.get("storagePerGiBDay", base.storage_per_gib_day)))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative number")
    return float(value)
