"""Personal data and secrets in text: find, count, redact.

Each detector is a pattern plus a check that removes what merely looks like a match:
card numbers must pass Luhn, IBANs mod-97, IP addresses must parse, SSNs must use
assignable ranges, and phone numbers must look like phone numbers — not version
strings, dates or plain counts.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

PII_TYPES = ("email", "phone", "credit_card", "ssn", "ip_address", "iban", "secret")


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    hint: re.Pattern[str] | None = None  # a cheap search any match needs; most text fails it at once


def _luhn(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def _iban(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ssn(value: str) -> bool:
    area, group, serial = value.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return not value.startswith("0.")  # "0.1.2.3"-style version strings


def _phone(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", value.strip()) or re.fullmatch(r"\d{1,2}[-./]\d{1,2}[-./]\d{2,4}", value.strip()):
        return False  # a date
    if re.fullmatch(r"\d+(\.\d+){1,3}", value.strip()):
        return False  # a version string or a decimal
    has_structure = value.strip().startswith("+") or "(" in value or re.search(r"\d[\s.-]\d", value) is not None
    return has_structure and len(digits) >= 10 or value.strip().startswith("+")


DETECTORS = (
    Detector("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), lambda _: True, re.compile("@")),
    Detector(
        "secret",
        re.compile(
            r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
            r"|AIza[0-9A-Za-z_-]{35}|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
            r"|(?i:(?:api[_-]?key|secret|password|passwd|token)\s*[:=]\s*['\"]?[A-Za-z0-9_\-/+=]{12,})"
        ),
        lambda _: True,
        re.compile(r"AKIA|gh[pousr]_|sk-|xox[abpr]-|AIza|PRIVATE KEY|(?i:api[_-]?key|secret|passw(?:or)?d|token)\s*[:=]"),
    ),
    Detector("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), _iban, re.compile(r"[A-Z]{2}\d{2}")),
    Detector("credit_card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), _luhn, re.compile(r"\d{4}")),
    Detector("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), _ssn, re.compile(r"\d-\d\d-\d")),
    Detector(
        "ip_address",
        re.compile(
            r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"  # IPv4, a ':port' may follow
            r"|(?<![\w.:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"  # IPv6, checked by ipaddress
        ),
        _ip,
        re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:"),
    ),
    Detector("phone", re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{6,18}\d(?!\w|\.\d)"), _phone, re.compile(r"\d[\d\s().-]{5}")),
)


# Words right before a match that say what it really is: a dotted quad after "version" is
# a version, a dashed number after "ISBN" or "order #" is an identifier, not a phone.
_NOT_PII_AFTER = {
    "ip_address": re.compile(r"(?i)\b(?:v|version|release|build|ver\.?)\s*$"),
    "phone": re.compile(r"(?i)\b(?:isbn(?:-1[03])?|order|invoice|ticket|tracking|ref|id)\s*[:#]?\s*$"),
}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


# Every finding needs a digit, '@', ':' or '=' — except secrets with a fixed prefix.
_TRIGGERS = "0123456789@:="
_SECRET_PREFIX = re.compile(r"AKIA|gh[pousr]_|sk-|xox[abpr]-|AIza|PRIVATE KEY")


def find(text: str) -> list[Finding]:
    """Non-overlapping findings; earlier detectors win (a card number is not also a phone)."""
    if not any(ch in text for ch in _TRIGGERS) and _SECRET_PREFIX.search(text) is None:
        return []  # the common case, decided by substring checks in C
    taken: list[tuple[int, int]] = []
    found: list[Finding] = []
    for detector in DETECTORS:
        if detector.hint is not None and detector.hint.search(text) is None:
            continue
        for match in detector.pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            context = _NOT_PII_AFTER.get(detector.kind)
            if context is not None and context.search(text[max(0, start - 16) : start]):
                continue
            if detector.valid(match.group()):
                taken.append((start, end))
                found.append(Finding(detector.kind, start, end))
    return sorted(found, key=lambda f: f.start)


def count(text: str) -> Counter[str]:
    return Counter(f.kind for f in find(text))


def redact(text: str) -> tuple[str, Counter[str]]:
    """The text with each finding replaced by [KIND], and what was replaced."""
    findings = find(text)
    if not findings:
        return text, Counter()
    parts, last = [], 0
    for f in findings:
        parts.append(text[last : f.start])
        parts.append(f"[{f.kind.upper()}]")
        last = f.end
    parts.append(text[last:])
    return "".join(parts), Counter(f.kind for f in findings)
