"""The PII text classifier shared by on-screen text and spoken PII.

    clf = PiiClassifier(custom_terms=("Jane Doe", r"re:ACME-\\d+"))
    clf.find("mail jane@example.com") -> [PiiSpan(start=5, end=21, label='email', score=1.0)]

Labels: email, url, phone, card, iban, ssn, national_id, ip, address, person, date_of_birth,
account (account numbers, and secrets such as passwords and PINs named by a cue), custom.
Nothing here touches the network: Presidio's recognisers run without its NLP engine, and the
spaCy model is loaded from the verified model cache.
"""

from .checksums import iban_valid, luhn_valid
from .classifier import PiiClassifier
from .spans import LABELS, PiiSpan

__all__ = ["LABELS", "PiiClassifier", "PiiSpan", "iban_valid", "luhn_valid"]
