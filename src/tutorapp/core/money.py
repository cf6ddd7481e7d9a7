"""Money: an integer of minor units and an ISO 4217 currency, never a float.

How many minor units make a major one is the currency's own exponent (CLDR data
through Babel): 2 for EUR, 0 for JPY, 3 for KWD. Shown amounts are formatted by Babel
for a locale; plain amounts (CSV, receipts) are exact decimal strings."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision

DEFAULT_LOCALE = "en"


def exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit: EUR 2, JPY 0, KWD 3."""
    return int(get_currency_precision(currency.upper()))


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    """2600 EUR -> Decimal("26.00"); exact."""
    places = exponent(currency)
    return Decimal(int(amount_minor)).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def plain(amount_minor: int, currency: str) -> str:
    """12345 EUR -> "123.45", 1500 JPY -> "1500", 1234 KWD -> "1.234"."""
    return str(to_decimal(amount_minor, currency))


def display(amount_minor: int, currency: str, locale: str | None = None) -> str:
    """An amount as people read it: 2600 EUR -> "€26.00", 1500 JPY -> "¥1,500"."""
    return format_currency(to_decimal(amount_minor, currency), currency.upper(),
                           locale=locale or DEFAULT_LOCALE)

