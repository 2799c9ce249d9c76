"""The text being read, its ``Key: value`` fields, and the link, dial-in, PIN and kind of a meeting.

Private to :mod:`mailflow.core.when`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailflow.core._when_words import (
    _CONFERENCE_HOST,
    _DIAL_CONTEXT,
    _FIELD,
    _KEYS,
    _LINK_CONTEXT,
    _PHONE,
    _PHONE_WORDS,
    _PIN,
    _URL,
    _WEB_WORDS,
)
from mailflow.core.calendar import Kind


@dataclass
class _Notes:
    problems: dict[str, str] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    def problem(self, name: str, message: str) -> None:
        self.problems.setdefault(name, message)


@dataclass
class _Text:
    """Text being read: each piece recognised is blanked so that no later pattern reads it again."""

    value: str

    def take(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        found = list(pattern.finditer(self.value))
        for match in found:
            self.blank(match.start(), match.end())
        return found

    def blank(self, start: int, end: int) -> None:
        self.value = self.value[:start] + " " * (end - start) + self.value[end:]

    def line_at(self, position: int) -> str:
        start = self.value.rfind("\n", 0, position) + 1
        end = self.value.find("\n", position)
        return self.value[start : end if end >= 0 else len(self.value)]


def _fields(free: _Text) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for match in list(_FIELD.finditer(free.value)):
        name = _KEYS.get(re.sub(r"[\s\-_]", "", match.group("key").lower()))
        if name is not None:
            fields.setdefault(name, []).append(match.group("value"))
            free.blank(match.start(), match.end())
    return fields


def _link(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    for url in free.take(_URL):
        # Without a Link field, a URL counts when it is a conferencing address or sits on a line about
        # joining: a signature's web site is not a meeting.
        if "link" not in fields and (
            _CONFERENCE_HOST.search(url.group()) or _LINK_CONTEXT.search(free.line_at(url.start()))
        ):
            fields["link"] = [url.group()]
    if "link" not in fields:
        return ""
    found = _URL.search(" ".join(fields["link"]))
    if found is None:
        notes.problem("link", "the link is not a web address starting with https://")
        return ""
    return found.group().rstrip(".,;:)>]")


def _dial_in(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    number = " ".join(fields.get("dial-in", []))
    for match in free.take(_PHONE):
        # A number counts only beside words of dialling: a signature's "T: +32 …" is not a dial-in.
        if not number and _DIAL_CONTEXT.search(free.line_at(match.start())):
            number = match.group()
    if not number:
        return ""
    digits = re.sub(r"\(0\)|[\s\-./()]", "", number.split(",")[0])
    digits = "+" + digits[2:] if digits.startswith("00") else digits
    if re.fullmatch(r"\+\d{6,15}", digits) is None:
        notes.problem("dial-in", "write the dial-in number in international form, such as +32 2 123 45 67")
        return ""
    return f"tel:{digits}"


def _pin(fields: dict[str, list[str]], free: _Text, notes: _Notes) -> str:
    raw = " ".join(fields.get("pin", []))
    for match in free.take(_PIN):
        raw = raw or match.group("pin")
    pin = re.sub(r"\s", "", raw)
    if pin and re.fullmatch(r"[A-Za-z0-9#*\-]{1,32}", pin) is None:
        notes.problem("pin", "the PIN should be digits (and #), up to 32 characters")
        return ""
    return pin


def _kind(fields: dict[str, list[str]], text: str, join_url: str, dial_in: str, notes: _Notes) -> Kind | None:
    kind = None
    web, phone = bool(_WEB_WORDS.search(text)), bool(_PHONE_WORDS.search(text))
    if "kind" in fields:
        value = " ".join(fields["kind"])
        kind = Kind.WEB if _WEB_WORDS.search(value) else Kind.PHONE if _PHONE_WORDS.search(value) else None
        if kind is None:
            notes.problem("kind", f"“{value.strip()}” is neither web nor phone")
    elif join_url or dial_in:
        kind = Kind.WEB if join_url else Kind.PHONE
    elif web != phone:
        kind = Kind.WEB if web else Kind.PHONE
    else:
        notes.problem("kind", "say whether it is a web or a phone meeting (“Kind: web”)")
    if kind is Kind.WEB and not join_url:
        notes.problem("link", "a web meeting needs its link (“Link: https://…”)")
    if kind is Kind.PHONE and not dial_in:
        notes.problem("dial-in", "a phone meeting needs its dial-in number (“Dial-in: +32 2 123 45 67”)")
    return kind
