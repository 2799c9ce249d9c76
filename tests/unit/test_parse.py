"""Tests of core.parse: the sample corpus, each extracted field, the caps, and hostile input."""

from __future__ import annotations

import base64
import email
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailflow.core.model import ParsedMail
from mailflow.core.parse import parse_message, precheck

DATA = Path(__file__).parent.parent / "data" / "eml"


def load(name: str) -> bytes:
    """Read one sample message of the corpus."""
    return (DATA / name).read_bytes()


def plain(body: str, subject: str = "Join", headers: str = "") -> bytes:
    """Build a minimal UTF-8 text/plain message around ``body``."""
    head = (
        "From: Pieter De Vries <pieter.devries@stad.gent.example>\n"
        "To: interest-groups@network.example\n"
        f"Subject: {subject}\n{headers}"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    )
    return head.encode() + body.encode()


def html_only(raw: bytes) -> bytes | None:
    """The same message with its HTML part alone, in its own charset, or None without one."""
    message = email.message_from_bytes(raw)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            charset = part.get_content_charset() or "utf-8"
            head = (
                f"From: {message['From']}\nSubject: {message['Subject']}\n"
                f"Content-Type: text/html; charset={charset}\nContent-Transfer-Encoding: 8bit\n\n"
            )
            return head.encode() + part.get_payload(decode=True)
    return None


def squash(text: str) -> str:
    """Text with every run of whitespace made one space, to compare plain and HTML renderings."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Case:
    """A corpus sample and what its new text must be, contain and leave out."""

    name: str
    exact: str | None = None
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


QUOTED = ("REJECT <reason>", "Reply with one of", "wrote", "From:", "Interest Groups")
CASES = [
    Case(
        "join_plain.eml",
        exact="Dear colleagues, The City of Ghent would like to join the Circular Public Procurement"
        " interest group. Our procurement team is working on circular furniture and IT equipment"
        " tenders and would welcome the exchange with other cities. Please let me know if you need"
        " anything else from us.",
        absent=("Kind regards", "Botermarkt"),
    ),
    Case(
        "join_de_qp.eml",
        present=(
            (
                "die Landeshauptstadt München möchte der Interessengruppe „Circular Public Procurement“"
                " beitreten."
            ),
            "kreislauffähiger",
        ),
        absent=("Mit freundlichen Grüßen", "Jürgen Weiß"),
    ),
    Case(
        "join_html_outlook.eml",
        exact="Hello, Barcelona City Council would like to join the Socially Responsible Public"
        " Procurement of ICT group. We\u2019re revising the ICT supply chain clauses of our framework"
        " contracts this year and would value the exchange.",
        absent=("Best regards", "font-family", "MsoNormal"),
    ),
    Case(
        "join_forward_gmail.eml",
        present=(
            "please see the request below",
            "whether Lisbon can join the Sustainable and Healthy Food Procurement group?",
        ),
        absent=("Forwarded message", "From: Ana Costa", "Subject:", "Thanks,"),
    ),
    Case(
        "join_forward_apple.eml",
        exact="Hi Kasia, Kraków would like to join the Sustainable and Healthy Food Procurement group."
        " Can you send this on to the network? Piotr",
    ),
    Case(
        "join_forward_thunderbird_de.eml",
        present=(
            "Zur Bearbeitung weitergeleitet.",
            "die Stadt Köln möchte der Gruppe Socially Responsible Public Procurement of ICT beitreten.",
        ),
        absent=("Weitergeleitete Nachricht", "Betreff:", "Von:", "Viele Grüße"),
    ),
    Case(
        "join_forward_outlook.eml",
        present=("Please handle the request below.", "start a new group on zero-emission construction"),
        absent=("From: Lena", "Sent:", "Best regards"),
    ),
    Case("approve_outlook_desktop.eml", exact="Approve Anna", absent=QUOTED),
    Case(
        "approve_owa_html.eml",
        exact="REJECT Please ask them to become a Procura+ participant first \u2013 they are a supplier.",
        absent=("APPROVE", *QUOTED),
    ),
    Case("approve_gmail.eml", exact="APPROVE", absent=QUOTED),
    Case("approve_iphone.eml", exact="Approve", absent=("Sent from my iPhone", *QUOTED)),
    Case(
        "reply_thunderbird.eml",
        exact="INFO Which department of the city will take part in the meetings?",
        absent=("Maria Rossi", *QUOTED),
    ),
    Case("approve_outlook_de.eml", exact="APPROVE", absent=("Von:", "Grüßen", *QUOTED)),
    Case(
        "reply_gmail_fr.eml",
        exact="REJECT L'entreprise n'est pas une autorité publique participante du réseau.",
        absent=("a écrit", *QUOTED),
    ),
    Case("ooo_exchange.eml", present=("I am out of the office until 10 March",)),
    Case("ooo_de_noheaders.eml", present=("nicht im Büro",)),
    Case(
        "list_mailman.eml",
        present=("Who wants to join the Circular Public Procurement group",),
        absent=("Procurement Forum mailing list",),
    ),
    Case("malformed_headers.eml", exact="Please add us to the ICT group."),
    Case("charset_unknown.eml", exact="München möchte der Gruppe Circular Public Procurement beitreten."),
    Case("raw_8bit_headers.eml", exact="Köln möchte beitreten."),
    Case("nested_60.eml", exact="Outer text: please add Ghent to the circular procurement group."),
    Case("huge_subject.eml", exact="We would like to join the circular procurement group."),
    Case("own_echo.eml", exact="Thank you, we received your request to join Circular Public Procurement."),
    Case("imip_reply_outlook.eml", exact=""),
    Case("imip_reply_apple.eml", exact=""),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_new_text_of_each_sample(case: Case) -> None:
    """The new text is what the sender wrote, without quoted history, signatures or forward headers."""
    text = squash(parse_message(load(case.name)).text)
    if case.exact is not None:
        assert case.exact == text
    for phrase in case.present:
        assert phrase in text
    for phrase in case.absent:
        assert phrase not in text


HTML_CASES = [case for case in CASES if html_only(load(case.name)) is not None]


@pytest.mark.parametrize("case", HTML_CASES, ids=lambda case: case.name)
def test_new_text_of_each_html_part_alone(case: Case) -> None:
    """Sent as HTML only, each sample gives the same new text: the clients' quote blocks are dropped."""
    raw = html_only(load(case.name))
    assert raw is not None
    text = squash(parse_message(raw).text)
    if case.exact is not None:
        assert case.exact == text
    for phrase in case.present:
        assert phrase in text
    for phrase in case.absent:
        assert phrase not in text


def test_every_sample_is_in_the_corpus_readme() -> None:
    """The corpus README lists every sample, and every non-bounce sample has a new-text case."""
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    names = {path.name for path in DATA.glob("*.eml")}
    assert set() == {name for name in names if f"`{name}`" not in readme}
    assert names - {"dsn_postfix.eml", "ndr_plain.eml"} <= {case.name for case in CASES}


def test_full_text_keeps_the_quotes() -> None:
    """full_text is the whole body: the quoted approval mail is still there."""
    parsed = parse_message(load("approve_gmail.eml"))
    assert "> REJECT <reason>" in parsed.full_text
    assert "On Mon, 3 Mar 2025 at 09:15" in parsed.full_text


def test_html_only_full_text_is_converted_html() -> None:
    """An HTML-only body becomes text with neither tags nor markdown escapes."""
    parsed = parse_message(load("approve_owa_html.eml"))
    assert "Reply with one of:\nAPPROVE\nREJECT <reason>\nINFO <question>" in parsed.full_text
    assert (
        "From: Interest Groups <interest-groups+nbswy3dpeb3w64tmmqqgc3tdmu@network.example>"
        in parsed.full_text
    )
    assert "<div" not in parsed.full_text
    assert "&lt;" not in parsed.full_text


def test_addresses_ids_and_subject() -> None:
    """Addresses are lowercased, names and subjects decoded, Message-IDs lose their brackets."""
    parsed = parse_message(load("approve_gmail.eml"))
    assert "maria.rossi@iclei.example" == parsed.from_addr
    assert "Maria Rossi" == parsed.from_name
    assert "CAJ5pQr7tV9xZ1bD3fH5jL7nP9rT1vX3zB5dF7hJ9lN1pR3t@mail.gmail.example" == parsed.message_id
    assert ("mailflow.7.1740989701.a1b2c3@network.example",) == parsed.in_reply_to
    assert ("mailflow.7.1740989701.a1b2c3@network.example",) == parsed.references
    assert (
        "Re: [IG-mfrggzdfmztwq2lknnwg23tpob] Approval needed: City of Ghent wants to join Circular"
        " Public Procurement"
    ) == parsed.subject
    assert ("interest-groups+mfrggzdfmztwq2lknnwg23tpob@network.example",) == parsed.recipients


def test_recipients_reply_to_and_kept_headers() -> None:
    """To, Cc and Delivered-To are recipients; loop headers are kept by lowercased name."""
    parsed = parse_message(load("own_echo.eml"))
    assert (
        "pieter.devries@stad.gent.example",
        "interest-groups@network.example",
    ) == parsed.recipients
    assert "interest-groups+mfrggzdfmztwq2lknnwg23tpob@network.example" == parsed.from_addr
    assert "interest-groups+mfrggzdfmztwq2lknnwg23tpob@network.example" == parsed.reply_to
    assert ("ack",) == parsed.headers["x-mailflow"]
    assert "auto-replied" == parsed.header("Auto-Submitted")
    assert 'text/plain; charset="utf-8"' == parsed.header("content-type")
    assert "received" not in parsed.headers


def test_folded_headers_are_unfolded() -> None:
    """A folded Authentication-Results header is kept on one line."""
    parsed = parse_message(load("join_plain.eml"))
    results = parsed.header("authentication-results")
    assert results.startswith("mail.network.example; dkim=pass (2048-bit key)")
    assert "\n" not in results
    assert "dmarc=pass (p=quarantine dis=none) header.from=stad.gent.example" in results


def test_encoded_words_in_latin1_and_utf8() -> None:
    """RFC 2047 words in ISO-8859-1 and UTF-8, folded over lines, decode to one subject line."""
    assert "Katrin Müller" == parse_message(load("approve_outlook_de.eml")).from_name
    parsed = parse_message(load("ooo_de_noheaders.eml"))
    assert 'Abwesenheitsnotiz: Ihre Anfrage zur Gruppe "Circular Public Procurement"' == parsed.subject
    assert (
        "Beitritt zur Gruppe „Circular Public Procurement“" == parse_message(load("join_de_qp.eml")).subject
    )


def test_raw_8bit_headers_are_read_as_utf8_then_latin1() -> None:
    """Unencoded 8-bit header bytes are read as UTF-8, and as Latin-1 when they are not UTF-8."""
    parsed = parse_message(load("raw_8bit_headers.eml"))
    assert "Beitritt Köln zur Gruppe Circular" == parsed.subject
    assert "Jürgen Weiß" == parsed.from_name
    assert ("LegacyéMailer 1.0",) == parsed.headers["x-mailer"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Subject: =?utf-8?q?Hello=0D=0ABcc:_victim@example.org?=", "Hello Bcc: victim@example.org"),
        (
            "Subject: =?utf-8?b?" + base64.b64encode(b"a\r\nb\x00c\x1bd\xe2\x80\xa8e").decode() + "?=",
            "a b c d e",
        ),
        ("Subject: plain\n\tfolded   text", "plain folded text"),
    ],
)
def test_subject_is_one_line_without_control_characters(header: str, expected: str) -> None:
    """Decoded CR, LF, NUL, escape and line separators become single spaces: no header injection."""
    raw = f"From: a@example.org\n{header}\nContent-Type: text/plain\n\nbody\n".encode()
    assert expected == parse_message(raw).subject


def test_display_name_is_one_line() -> None:
    """An encoded display name carrying CR/LF is collapsed to one line."""
    raw = b"From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40y?= <eve@example.org>\nSubject: x\n\nbody\n"
    parsed = parse_message(raw)
    assert "Eve Bcc: x@y" == parsed.from_name
    assert "eve@example.org" == parsed.from_addr


def test_calendar_from_the_method_parameter() -> None:
    """Outlook's text/calendar part gives the calendar text and METHOD from its parameter."""
    parsed = parse_message(load("imip_reply_outlook.eml"))
    assert "REPLY" == parsed.calendar_method
    assert parsed.calendar.startswith("BEGIN:VCALENDAR")
    assert "PARTSTAT=ACCEPTED" in parsed.calendar


def test_calendar_from_an_ics_attachment_without_parameter() -> None:
    """Apple's .ics attachment has no method parameter: METHOD comes from the body."""
    parsed = parse_message(load("imip_reply_apple.eml"))
    assert "REPLY" == parsed.calendar_method
    assert "ATTENDEE;CN=Katrin Müller" in parsed.calendar


def test_calendar_found_by_file_name() -> None:
    """An octet-stream attachment named *.ics is the calendar; its METHOD is uppercased."""
    raw = (
        b"From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: text/plain\n\nSee attached.\n--b\n"
        b'Content-Type: application/octet-stream; name="invite.ics"\n'
        b"Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(b"BEGIN:VCALENDAR\r\nMETHOD:counter\r\nEND:VCALENDAR\r\n")
        + b"--b--\n"
    )
    parsed = parse_message(raw)
    assert "COUNTER" == parsed.calendar_method
    assert "See attached." == parsed.text


def test_delivery_status_notifications() -> None:
    """multipart/report with report-type=delivery-status is a DSN; a plain bounce text is not."""
    assert parse_message(load("dsn_postfix.eml")).is_dsn
    assert not parse_message(load("ndr_plain.eml")).is_dsn
    nested = (
        b"From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: text/plain\n\nFailed.\n--b\nContent-Type: message/delivery-status\n\n"
        b"Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; x@example.org\nAction: failed\n"
        b"--b--\n"
    )
    assert parse_message(nested).is_dsn


def test_malformed_headers_are_survived_and_recorded() -> None:
    """``Content-Type: text/plain; name*`` and ``To: "`` parse, with a defect each."""
    parsed = parse_message(load("malformed_headers.eml"))
    assert "it@broken-client.example" == parsed.from_addr
    assert ("interest-groups@network.example",) == parsed.recipients
    assert "Content-Type parameter 'name' without a value" in parsed.defects
    assert "no address readable in '\"'" in parsed.defects


def test_unknown_charset_falls_back_to_utf8() -> None:
    """Body and subject in charset x-unknown are read as UTF-8, and the charset is recorded."""
    parsed = parse_message(load("charset_unknown.eml"))
    assert "Beitritt München" == parsed.subject
    assert "unknown charset x-unknown" in parsed.defects


def test_unknown_charset_that_is_not_utf8_falls_back_to_latin1() -> None:
    """Bytes that are not UTF-8 under an unknown charset are read as Latin-1."""
    raw = b"From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=x-mac-nothing\n\nK\xf6ln\n"
    assert "Köln" == parse_message(raw).text


def test_deep_nesting_is_cut_before_parsing() -> None:
    """A 60-level multipart is cut at max_depth; the outer text survives."""
    parsed = parse_message(load("nested_60.eml"))
    assert "MIME nesting deeper than 20: cut" in parsed.defects
    shallow = parse_message(load("nested_60.eml"), max_depth=3)
    assert "MIME nesting deeper than 3: cut" in shallow.defects
    assert "Outer text: please add Ghent to the circular procurement group." == shallow.text


def test_deep_attached_messages_are_cut() -> None:
    """A chain of 2,000 attached messages (message/rfc822 in message/rfc822) is cut too."""
    layer = b"From: a@example.org\nSubject: x\nContent-Type: message/rfc822\n\n"
    raw = layer * 2000 + b"From: b@example.org\n\ninnermost\n"
    parsed = parse_message(raw)
    assert "a@example.org" == parsed.from_addr
    assert "MIME nesting deeper than 20: cut" in parsed.defects


def test_huge_encoded_subject_is_cut() -> None:
    """A 200 KB encoded subject is cut to 16 KB before decoding, and the cut is recorded."""
    parsed = parse_message(load("huge_subject.eml"))
    assert parsed.subject.startswith("Beitritt zur Gruppe Kreislaufwirtschaft \u2013 Beitritt")
    assert len(parsed.subject) < 16 * 1024
    assert "header field cut at 16384 bytes" in parsed.defects
    assert "flood@huge.example" == parsed.from_addr


def test_too_many_parts_are_cut() -> None:
    """Parts beyond max_parts are cut before parsing; the first ones are still read."""
    parts = b"".join(b"--b\nContent-Type: text/plain\n\npart %d\n" % n for n in range(300))
    raw = (
        b"From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"
    )
    parsed = parse_message(raw, max_parts=50)
    assert "more than 50 MIME parts: cut" in parsed.defects
    assert "part 0" == parsed.text


def test_oversized_message_is_cut() -> None:
    """Bytes beyond max_bytes are cut before parsing, and the cut is recorded."""
    parsed = parse_message(plain("x" * 5000), max_bytes=1000)
    assert "message cut at 1000 bytes" in parsed.defects
    assert "pieter.devries@stad.gent.example" == parsed.from_addr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (plain("hello"), None),
        (b"From MAILER-DAEMON Mon Mar  3 09:14:02 2025\nFrom: a@example.org\n\nbody\n", None),
        (b"x" * 2000, "no header block"),
        (b"", "no header block"),
        (b"\nFrom: a@example.org\n\nbody\n", "no header block"),
        (b"\x00\xff\xfe garbage", "no header block"),
        (b"From: a@example.org\n\n" + b"y" * 2980, "message too large: 3001 bytes, limit 3000"),
    ],
    ids=["message", "mbox-line", "no-colon", "empty", "blank-first", "binary", "too-large"],
)
def test_precheck(raw: bytes, expected: str | None) -> None:
    """The precheck names what forces quarantine before parsing, and lets real messages through."""
    assert expected == precheck(raw, 3000)


HOSTILE = {
    "empty": b"",
    "nul-bytes": b"\x00" * 1000,
    "binary": bytes(range(256)) * 20,
    "headers-only": b"From: a@example.org\nSubject: x",
    "multipart-without-boundary": b"Content-Type: multipart/mixed\n\n--x\n\nbody\n",
    "boundary-never-used": b"Content-Type: multipart/mixed; boundary=zz\n\nno parts at all\n",
    "bad-base64-body": b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!***\n",
    "bad-base64-word": b"Subject: =?utf-8?b?!!!?=\nFrom: =?utf-8?b?x?= <a@b.c>\n\nbody\n",
    "charset-not-a-text-codec": b"Content-Type: text/plain; charset=base64\n\nbody\n",
    "charset-rfc2231": b"Content-Type: text/plain; charset*=utf-8''%E2%82%AC\n\nbody\n",
    "address-garbage": b'From: "\\\nTo: <<<@@@>>>, ,,, ;;; "a\nCc: (((\n\nbody\n',
    "long-line": b"Subject: x\n\n" + b"On " + b"a" * 300_000 + b" wrote:\n",
    "html-garbage": b"Content-Type: text/html\n\n<div class='gmail_quote'><<<!-- <![CDATA[ &#99999999; </x>",
    "blank-lines": b"Subject: x\n\nApprove" + b"\n" * 100_000 + b"Thanks,\n",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_never_raises(raw: bytes) -> None:
    """Garbage, truncated and malformed input gives a ParsedMail, never an exception."""
    assert isinstance(parse_message(raw), ParsedMail)


def test_mangled_corpus_never_raises() -> None:
    """Every sample cut at many points or with bytes flipped still parses without raising."""
    for path in sorted(DATA.glob("*.eml")):
        raw = path.read_bytes()[:20_000]
        for cut in range(0, len(raw), max(1, len(raw) // 12)):
            assert isinstance(parse_message(raw[:cut]), ParsedMail)
        for seed in range(1, 7):
            mangled = bytearray(raw)
            # A fixed scatter of positions and values per seed: reproducible, no randomness needed.
            for index in range(seed * 7, len(mangled), max(1, len(mangled) // (20 + seed))):
                mangled[index] = (index * seed * 31) % 256
            assert isinstance(parse_message(bytes(mangled)), ParsedMail)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Approve\n\nOn Mon, 3 Mar 2025 at 10:00, X <x@y.example> wrote:\nREJECT no", "Approve"),
        ("Approve\n\nAm 03.03.2025 um 10:00 schrieb X:\nREJECT no", "Approve"),
        ("Approve\n\nLe lun. 3 mars 2025 à 10:00, X <x@y.example> a écrit :\nREJECT no", "Approve"),
        ("Approve\n\nEl lun, 3 mar 2025 a las 10:00, X (<x@y.example>) escribió:\nREJECT no", "Approve"),
        ("Approve\n\nIl giorno lun 3 mar 2025 alle ore 10:00 X ha scritto:\nREJECT no", "Approve"),
        ("Approve\n\nOp ma 3 mrt 2025 om 10:00 schreef X <x@y.example>:\nREJECT no", "Approve"),
        ("Approve\n\n-----Original Message-----\nREJECT no", "Approve"),
        ("Approve\n\n-----Ursprüngliche Nachricht-----\nREJECT no", "Approve"),
        ("Approve\n\nFrom: X\nSent: Monday\nTo: Y\nSubject: Z\n\nREJECT no", "Approve"),
        ("Approve\n\nVon: X\nGesendet: Montag\nAn: Y\nBetreff: Z\n\nREJECT no", "Approve"),
        ("Approve\n\nDe : X\nEnvoyé : lundi\nÀ : Y\nObjet : Z\n\nREJECT no", "Approve"),
        ("Approve\n\nDe: X\nEnviado el: lunes\nPara: Y\nAsunto: Z\n\nREJECT no", "Approve"),
        ("Approve\n\nDa: X\nInviato: lunedì\nA: Y\nOggetto: Z\n\nREJECT no", "Approve"),
        ("Approve\n> REJECT no\n> INFO why", "Approve"),
        ("Approve\n\nSent from my iPhone\n\nREJECT no", "Approve"),
        ("Approve\n\nVon meinem iPhone gesendet\n\nREJECT no", "Approve"),
        ("Approve\n\nEnvoyé de mon iPhone\n\nREJECT no", "Approve"),
        ("Approve\n-- \nAnna Schmidt\nREJECT no", "Approve"),
        ("Approve\n________________________________\nREJECT no", "Approve"),
        ("\n\nOn Mon, 3 Mar 2025 at 10:00, X <x@y.example> wrote:\n> APPROVE\n", ""),
        ("From: X\nSent: Monday\nTo: Y\n\nAPPROVE\n", ""),
        ("-----Original Message-----\nAPPROVE\n", ""),
        ("> APPROVE\n", ""),
        (
            "On 3 Mar 2025, X wrote:\n> question?\n\nINFO answer below the quote\n",
            "INFO answer below the quote",
        ),
        # A postscript after the sign-off is the sender's own text; one in the quoted history is not.
        (
            "Approve\n\nKind regards,\nAnna\n\nP.S. Ghent would like to join food too.",
            "Approve\n\nP.S. Ghent would like to join food too.",
        ),
        ("Approve\n\nBest,\nAnna\n\nPS: and the ICT group", "Approve\n\nPS: and the ICT group"),
        (
            "Approve\n-- \nAnna Schmidt\nCity of Ghent\n\nP.P.S. two lines\nof it",
            "Approve\n\nP.P.S. two lines\nof it",
        ),
        ("Approve\n\nFrom: X\nSent: Monday\nTo: Y\nSubject: Z\n\nP.S. REJECT no", "Approve"),
        ("Approve\n\nOn Mon, 3 Mar 2025 at 10:00, X <x@y.example> wrote:\n> P.S. REJECT", "Approve"),
        (
            "Approve\n\nPsalm readers and PS5 owners are not postscripts",
            "Approve\n\nPsalm readers and PS5 owners are not postscripts",
        ),
    ],
)
def test_quote_headers_and_signatures_end_the_new_text(body: str, expected: str) -> None:
    """Each client's quote header, Outlook header block, '>' line and signature ends the new text.

    A decision that appears only in quoted text is never new text.
    """
    assert expected == parse_message(plain(body, subject="Re: [IG-x] Approval needed")).text


@pytest.mark.parametrize(
    "marker",
    [
        "---------- Forwarded message ---------",
        "Begin forwarded message:",
        "-------- Weitergeleitete Nachricht --------",
        "-------- Forwarded Message --------",
        "---------- Message transféré ---------",
    ],
)
def test_forward_headers_are_dropped_and_forwarded_text_kept(marker: str) -> None:
    """A forwarded request is still a request: the forward header lines go, the content stays."""
    body = (
        f"See below.\n\n{marker}\nFrom: Ana <ana@lisboa.example>\nDate: Fri, 28 Feb 2025\n"
        "Subject: Food group\nTo: Marta <marta@lisboa.example>\n\nLisbon would like to join the food group.\n"
    )
    assert "See below.\n\nLisbon would like to join the food group." == parse_message(plain(body)).text


def test_reply_to_a_forward_keeps_only_the_reply() -> None:
    """A forward marker inside quoted history does not bring the quoted text back."""
    body = (
        "APPROVE\n\nOn Mon, 3 Mar 2025 at 10:00, X <x@y.example> wrote:\n"
        "---------- Forwarded message ---------\nFrom: Z <z@z.example>\n\nREJECT no\n"
    )
    assert "APPROVE" == parse_message(plain(body)).text


def test_lines_looking_like_polish_headers_are_kept() -> None:
    """A request line starting "Data:" or "Do:" is text, not a reply header (Polish is left out)."""
    body = "We would like to join.\nData: 12 tenders in 2024\nDo: share our criteria\n"
    assert body.strip() == parse_message(plain(body)).text


def test_hyphen_lists_are_kept() -> None:
    """A request written as a hyphen list is not mistaken for a signature."""
    body = "Please add us to:\n- Circular Public Procurement\n- ICT\n"
    assert body.strip() == parse_message(plain(body)).text


HTML_QUOTES = {
    "gmail signature": '<div dir="ltr">APPROVE<br><div class="gmail_signature">Anna<br>ICLEI</div></div>',
    "yahoo quote": '<div>APPROVE</div><div class="yahoo_quoted"><div>On Monday X wrote:</div>REJECT no</div>',
    "thunderbird signature": '<p>APPROVE</p><pre class="moz-signature" cols="72">-- \nAnna</pre>',
    "apple quote": '<div>APPROVE</div><blockquote type="cite"><div>REJECT no</div></blockquote>',
    "outlook 2010 rule": (
        '<p class="MsoNormal">APPROVE</p><div style="border:none;border-top:solid #B5C4DF 1.0pt">'
        "<p><b>From:</b> X</p></div><p>REJECT no</p>"
    ),
    "nested quote blocks": (
        '<div>APPROVE</div><div class="gmail_quote"><div class="gmail_quote"><div>REJECT</div></div>'
        "<div>no</div></div>"
    ),
}


@pytest.mark.parametrize("markup", HTML_QUOTES.values(), ids=HTML_QUOTES.keys())
def test_html_quote_blocks_are_dropped(markup: str) -> None:
    """Quote and signature blocks of Gmail, Yahoo, Thunderbird, Apple and Outlook are not new text."""
    raw = b"From: a@example.org\nSubject: Re: x\nContent-Type: text/html; charset=utf-8\n\n" + markup.encode()
    parsed = parse_message(raw)
    assert "APPROVE" == parsed.text
    assert "APPROVE" in parsed.full_text
