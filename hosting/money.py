"""Money is stored as integer cents with an ISO currency code; this formats it."""

from decimal import Decimal


def format_cents(cents: int, currency: str = "usd") -> str:
    """900, "usd" -> "$9.00"; 900, "eur" -> "9.00 EUR"."""
    amount = Decimal(int(cents)).scaleb(-2)
    code = (currency or "usd").upper()
    if code == "USD":
        sign = "-" if amount < 0 else ""
        return f"{sign}${abs(amount):,.2f}"
    return f"{amount:,.2f} {code}"
