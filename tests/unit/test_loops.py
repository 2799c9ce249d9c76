"""Tests of core.loops: which messages must never be answered, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.core.loops import loop_kind
from mailflow.core.model import LoopKind, ParsedMail
from mailflow.core.parse import parse_message

DATA = Path(__file__).parent.parent / "data" / "eml"
OWN = frozenset({"interest-groups@network.example"})

CORPUS = {
    "join_plain.eml": None,
    "join_de_qp.eml": None,
    "join_html_outlook.eml": None,
    "join_forward_gmail.eml": None,
    "join_forward_apple.eml": None,
    "join_forward_thunderbird_de.eml": None,
    "join_forward_outlook.eml": None,
    "approve_outlook_desktop.eml": None,
    "approve_owa_html.eml": None,
    "approve_gmail.eml": None,
    "approve_iphone.eml": None,
    "reply_thunderbird.eml": None,
    "approve_outlook_de.eml": None,
    "reply_gmail_fr.eml": None,
    "ooo_exchange.eml": LoopKind.AUTO_REPLY,
    "ooo_de_noheaders.eml": LoopKind.AUTO_REPLY,
    "dsn_postfix.eml": LoopKind.BOUNCE,
    "ndr_plain.eml": LoopKind.BOUNCE,
    "list_mailman.eml": LoopKind.LIST,
    "imip_reply_outlook.eml": LoopKind.CALENDAR_REPLY,
    "imip_reply_apple.eml": LoopKind.CALENDAR_REPLY,
    "malformed_headers.eml": None,
    "charset_unknown.eml": None,
    "raw_8bit_headers.eml": None,
    "nested_60.eml": None,
    "huge_subject.eml": None,
    "own_echo.eml": LoopKind.OWN_MAIL,
}


@pytest.mark.parametrize(("name", "expected"), CORPUS.items(), ids=CORPUS.keys())
def test_verdict_of_each_sample(name: str, expected: LoopKind | None) -> None:
    """Each sample of the corpus gets the verdict its kind calls for; people's mail gets None."""
    assert expected == loop_kind(parse_message((DATA / name).read_bytes()), OWN)


def test_every_sample_has_a_verdict() -> None:
    """The verdict table covers the whole corpus."""
    assert {path.name for path in DATA.glob("*.eml")} == set(CORPUS)


def mail(
    *,
    sender: str = "pieter.devries@stad.gent.example",
    subject: str = "Join circular",
    method: str = "",
    dsn: bool = False,
    **headers: str,
) -> ParsedMail:
    """A person's message, with the given header values (``x_mailflow`` is ``X-Mailflow``)."""
    return ParsedMail(
        from_addr=sender,
        subject=subject,
        calendar_method=method,
        is_dsn=dsn,
        headers={name.replace("_", "-"): (value,) for name, value in headers.items()},
    )


RULES = {
    "person": (mail(), None),
    "own address": (mail(sender="interest-groups@network.example"), LoopKind.OWN_MAIL),
    "own plus-address": (mail(sender="interest-groups+abc123@network.example"), LoopKind.OWN_MAIL),
    "own address in capitals": (mail(sender="Interest-Groups@Network.Example"), LoopKind.OWN_MAIL),
    "x-mailflow header": (mail(x_mailflow="ack"), LoopKind.OWN_MAIL),
    "x-loop naming us": (mail(x_loop="Interest-Groups@network.example"), LoopKind.OWN_MAIL),
    "x-loop naming a list": (mail(x_loop="forum@lists.example"), None),
    "look-alike local part": (mail(sender="interest-groups-x@network.example"), None),
    "look-alike domain": (mail(sender="interest-groups@network.example.evil"), None),
    "dsn": (mail(dsn=True), LoopKind.BOUNCE),
    "mailer-daemon": (mail(sender="MAILER-DAEMON@mx.example"), LoopKind.BOUNCE),
    "mailer-daemon without domain": (mail(sender="mailer-daemon"), LoopKind.BOUNCE),
    "postmaster": (mail(sender="postmaster@mx.example"), LoopKind.BOUNCE),
    "null return-path": (mail(return_path="<>"), LoopKind.BOUNCE),
    "null return-path with space": (mail(return_path="< >"), LoopKind.BOUNCE),
    "x-failed-recipients": (mail(x_failed_recipients="a@b.example"), LoopKind.BOUNCE),
    "postfix subject": (mail(subject="Undelivered Mail Returned to Sender"), LoopKind.BOUNCE),
    "gmail subject": (mail(subject="Delivery Status Notification (Failure)"), LoopKind.BOUNCE),
    "exim subject": (mail(subject="Mail delivery failed: returning message to sender"), LoopKind.BOUNCE),
    "exchange subject": (mail(subject="Undeliverable: Join circular"), LoopKind.BOUNCE),
    "german exchange subject": (mail(subject="Unzustellbar: Beitritt"), LoopKind.BOUNCE),
    "french exchange subject": (mail(subject="Non remis : Adhésion"), LoopKind.BOUNCE),
    "return-path of a person": (mail(return_path="<p@stad.gent.example>"), None),
    "calendar reply": (mail(method="REPLY"), LoopKind.CALENDAR_REPLY),
    "calendar counter": (mail(method="COUNTER"), LoopKind.CALENDAR_REPLY),
    "calendar refresh": (mail(method="REFRESH"), LoopKind.CALENDAR_REPLY),
    "calendar request": (mail(method="REQUEST"), None),
    "auto-submitted auto-replied": (mail(auto_submitted="auto-replied"), LoopKind.AUTO_REPLY),
    "auto-submitted auto-generated": (mail(auto_submitted="auto-generated"), LoopKind.AUTO_REPLY),
    "auto-submitted with parameters": (mail(auto_submitted="Auto-Replied; owner=x"), LoopKind.AUTO_REPLY),
    "auto-submitted no": (mail(auto_submitted="no"), None),
    "x-autoreply": (mail(x_autoreply="yes"), LoopKind.AUTO_REPLY),
    "x-autorespond": (mail(x_autorespond="vacation"), LoopKind.AUTO_REPLY),
    "precedence auto_reply": (mail(precedence="auto_reply"), LoopKind.AUTO_REPLY),
    "x-auto-response-suppress is a request": (mail(x_auto_response_suppress="All"), None),
    "en out of office": (mail(subject="Out of Office: Join circular"), LoopKind.AUTO_REPLY),
    "en automatic reply": (mail(subject="Automatic reply: Join circular"), LoopKind.AUTO_REPLY),
    "en auto-reply": (mail(subject="Auto-Reply: Join circular"), LoopKind.AUTO_REPLY),
    "en autoreply": (mail(subject="[Autoreply] Join circular"), LoopKind.AUTO_REPLY),
    "de abwesenheitsnotiz": (mail(subject="Abwesenheitsnotiz: Beitritt"), LoopKind.AUTO_REPLY),
    "de automatische antwort": (mail(subject="Automatische Antwort: Beitritt"), LoopKind.AUTO_REPLY),
    "de abwesend": (mail(subject="Abwesend: Beitritt"), LoopKind.AUTO_REPLY),
    "fr reponse automatique": (mail(subject="Réponse automatique : Adhésion"), LoopKind.AUTO_REPLY),
    "fr absence": (mail(subject="Absence : Adhésion"), LoopKind.AUTO_REPLY),
    "es respuesta automatica": (mail(subject="Respuesta automática: Adhesión"), LoopKind.AUTO_REPLY),
    "es fuera de la oficina": (mail(subject="Fuera de la oficina"), LoopKind.AUTO_REPLY),
    "it risposta automatica": (mail(subject="Risposta automatica: Adesione"), LoopKind.AUTO_REPLY),
    "it fuori sede": (mail(subject="Fuori sede: Adesione"), LoopKind.AUTO_REPLY),
    "nl automatisch antwoord": (mail(subject="Automatisch antwoord: Aanmelding"), LoopKind.AUTO_REPLY),
    "nl afwezig": (mail(subject="Afwezig: Aanmelding"), LoopKind.AUTO_REPLY),
    "subject about absence": (mail(subject="Absence of circular criteria in tenders"), None),
    "reply about an out-of-office": (mail(subject="Re: our out of office rules"), None),
    "precedence list": (mail(precedence="list"), LoopKind.LIST),
    "precedence bulk": (mail(precedence="Bulk"), LoopKind.LIST),
    "precedence junk": (mail(precedence="junk"), LoopKind.LIST),
    "list-id with precedence": (mail(list_id="<forum.lists.example>", precedence="list"), LoopKind.LIST),
    "list-unsubscribe alone": (mail(list_unsubscribe="<mailto:leave@lists.example>"), None),
    "own before bounce": (mail(x_mailflow="ack", dsn=True), LoopKind.OWN_MAIL),
    "bounce before auto-reply": (mail(dsn=True, auto_submitted="auto-replied"), LoopKind.BOUNCE),
    "calendar before auto-reply": (
        mail(method="REPLY", auto_submitted="auto-generated"),
        LoopKind.CALENDAR_REPLY,
    ),
    "auto-reply before list": (mail(auto_submitted="auto-generated", precedence="bulk"), LoopKind.AUTO_REPLY),
}


@pytest.mark.parametrize(("parsed", "expected"), RULES.values(), ids=RULES.keys())
def test_each_rule(parsed: ParsedMail, expected: LoopKind | None) -> None:
    """Each marker alone gives its kind; near misses stay a person's mail; the order decides ties."""
    assert expected == loop_kind(parsed, OWN)


def test_no_own_addresses() -> None:
    """Without own addresses only the X-Mailflow header marks own mail."""
    assert None is loop_kind(mail(sender="interest-groups@network.example"), frozenset())
    assert LoopKind.OWN_MAIL == loop_kind(mail(x_mailflow="ack"), frozenset())
