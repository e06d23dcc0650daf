"""Check digits that separate real card and bank numbers from any other run of digits.

The audio side (spoken numbers) reuses these on digits it has normalised, so
they take loose input: spaces and dashes are ignored, anything else makes the check fail.
"""

from __future__ import annotations

import string

_SEPARATORS = str.maketrans("", "", " -")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (spaces and dashes allowed) passes the Luhn check used by payment cards.

    Fewer than 12 digits is never a card, so it is rejected rather than "valid by chance".
    """
    number = digits.translate(_SEPARATORS)
    if not number.isascii() or not number.isdigit() or len(number) < 12:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        value = int(char)
        if position % 2:  # every second digit from the right is doubled
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# ISO 13616 lengths per country; an IBAN of another length is a typo or not an IBAN at all.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_IBAN_CHARS = set(string.ascii_uppercase + string.digits)


def iban_valid(s: str) -> bool:
    """True when ``s`` (spaces and dashes allowed, any case) is an IBAN with the right length and mod-97 check."""
    iban = s.translate(_SEPARATORS).upper()
    if len(iban) < 15 or not set(iban) <= _IBAN_CHARS or _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    if not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
