"""noncde.api (non-CDE), published language: money is an integer amount in minor units plus a
lowercase ISO-4217 currency code, never a float (Stripe's convention)."""

from __future__ import annotations

from noncde.api.domain.errors import InvalidRequest

# Stripe's upper bound: eight digits of minor units.
MAX_AMOUNT = 99_999_999
MIN_AMOUNT = 1

# ISO-4217 codes accepted here (the ones card PSPs settle in).
CURRENCIES = frozenset(
    [
        "aed",
        "afn",
        "all",
        "amd",
        "ang",
        "aoa",
        "ars",
        "aud",
        "awg",
        "azn",
        "bam",
        "bbd",
        "bdt",
        "bgn",
        "bhd",
        "bif",
        "bmd",
        "bnd",
        "bob",
        "brl",
        "bsd",
        "bwp",
        "byn",
        "bzd",
        "cad",
        "cdf",
        "chf",
        "clp",
        "cny",
        "cop",
        "crc",
        "cve",
        "czk",
        "djf",
        "dkk",
        "dop",
        "dzd",
        "egp",
        "etb",
        "eur",
        "fjd",
        "fkp",
        "gbp",
        "gel",
        "gip",
        "gmd",
        "gnf",
        "gtq",
        "gyd",
        "hkd",
        "hnl",
        "htg",
        "huf",
        "idr",
        "ils",
        "inr",
        "isk",
        "jmd",
        "jod",
        "jpy",
        "kes",
        "kgs",
        "khr",
        "kmf",
        "krw",
        "kwd",
        "kyd",
        "kzt",
        "lak",
        "lbp",
        "lkr",
        "lrd",
        "lsl",
        "mad",
        "mdl",
        "mga",
        "mkd",
        "mmk",
        "mnt",
        "mop",
        "mur",
        "mvr",
        "mwk",
        "mxn",
        "myr",
        "mzn",
        "nad",
        "ngn",
        "nio",
        "nok",
        "npr",
        "nzd",
        "omr",
        "pab",
        "pen",
        "pgk",
        "php",
        "pkr",
        "pln",
        "pyg",
        "qar",
        "ron",
        "rsd",
        "rub",
        "rwf",
        "sar",
        "sbd",
        "scr",
        "sek",
        "sgd",
        "shp",
        "sle",
        "sos",
        "srd",
        "std",
        "szl",
        "thb",
        "tjs",
        "tnd",
        "top",
        "try",
        "ttd",
        "twd",
        "tzs",
        "uah",
        "ugx",
        "usd",
        "uyu",
        "uzs",
        "vnd",
        "vuv",
        "wst",
        "xaf",
        "xcd",
        "xof",
        "xpf",
        "yer",
        "zar",
        "zmw",
    ]
)

# Currencies without minor units (an amount of 100 JPY is ¥100).
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)


def check_currency(value: object, param: str = "currency") -> str:
    """The lowercase ISO-4217 code, or `InvalidRequest` naming `param`."""
    if not isinstance(value, str) or value.lower() not in CURRENCIES:
        raise InvalidRequest(
            f"Invalid currency: use a lowercase ISO-4217 code such as 'usd' ({param}).",
            code="invalid_currency",
            param=param,
        )
    return value.lower()


def check_amount(value: object, param: str = "amount") -> int:
    """A positive integer amount in minor units, or `InvalidRequest` naming `param`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            f"{param} must be an integer amount in the currency's minor unit.",
            code="parameter_invalid_integer",
            param=param,
        )
    if value < MIN_AMOUNT:
        raise InvalidRequest(
            f"{param} must be at least {MIN_AMOUNT}.", code="amount_too_small", param=param
        )
    if value > MAX_AMOUNT:
        raise InvalidRequest(
            f"{param} must be at most {MAX_AMOUNT}.", code="amount_too_large", param=param
        )
    return value
