"""Turn raw RFC 5322 bytes into a ParsedMail without ever raising.

Size, MIME nesting, part count and header length are capped on the raw bytes before the stdlib
parser sees them; the parser runs with ``compat32`` (fast) and only the headers ParsedMail needs are
decoded. The new text is the preferred body (text/plain, else HTML without the clients' quote
blocks) with quoted history, signatures and forward headers removed.
"""

from __future__ import annotations

import codecs
import email.header
import email.parser
import email.utils
import re
from email.message import Message
from html.parser import HTMLParser

import html2text
from mailparser_reply import EmailMessage

from mailflow.core.model import ParsedMail

_HEADER_CAP = 16 * 1024
_HTML_CAP = 512 * 1024
_TEXT_CAP = 256 * 1024
_LONG_LINE = 200
# Polish is left out: its reply-header pattern cuts at any single line starting "Data:" or "Do:".
_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "sv")
_KEPT = frozenset(
    "auto-submitted precedence list-id list-unsubscribe list-post x-autoreply x-autorespond "
    "x-auto-response-suppress x-loop x-mailflow return-path authentication-results content-type "
    "delivered-to x-original-to x-failed-recipients feedback-id "
    "x-ms-exchange-generated-message-source x-mailer".split()
)
_READ = _KEPT | {
    "message-id",
    "in-reply-to",
    "references",
    "from",
    "reply-to",
    "subject",
    "to",
    "cc",
}
_CONTROLS = dict.fromkeys([*range(32), *range(127, 160), 0x2028, 0x2029], " ")
_FIELD = re.compile(rb"[!-9;-~]{1,200}:")
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]+)"|([^;\s"]+))', re.IGNORECASE)
_METHOD = re.compile(r"^METHOD\s*:\s*([A-Za-z-]+)", re.MULTILINE | re.IGNORECASE)
_MSGID = re.compile(r"<([^<>\s]{1,250})>")
_MD_ESCAPE = re.compile(r"^(\s*\d*)\\([-+.])", re.MULTILINE)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|wg|tr|rv|i|vs|vb|doorst)\s*:", re.IGNORECASE)
_FWD_PHRASES = (
    "forwarded message|weitergeleitete nachricht|message transf[ée]r[ée]|mensaje reenviado|"
    "messaggio inoltrato|doorgestuurd bericht|vidarebefordrat meddelande"
)
_FWD_STARTS = (
    "begin forwarded message|anfang der weitergeleiteten (?:e-mail|nachricht)|"
    "d[ée]but du message r[ée]exp[ée]di[ée]|inicio del mensaje reenviado|"
    "inizio messaggio inoltrato|begin doorgestuurd bericht"
)
_FWD_LINE = re.compile(
    rf"^(?:-{{2,}}\s*(?:{_FWD_PHRASES})\s*-{{2,}}|(?:{_FWD_STARTS})\s?:)\s*$", re.IGNORECASE
)
_FWD_ANYWHERE = re.compile(f"{_FWD_PHRASES}|{_FWD_STARTS}", re.IGNORECASE)
_QUOTE_HEADER = re.compile(
    r"(?:On\s.{1,300}?\swrote|Am\s.{1,300}?\sschrieb\s.{0,300}?|Le\s.{1,300}?\sa\s[ée]crit"
    r"|El\s.{1,300}?\sescribi[óo]|Il\s.{1,300}?\sha\sscritto|Op\s.{1,300}?\sschreef\s.{0,300}?"
    r"|Den\s.{1,300}?\sskrev\s.{0,300}?|.{1,300}?\snapisał(?:\(a\))?)\s?:\s*"
    r"|-{3,}\s*(?:Original Message|Urspr[üu]ngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Ursprungligt meddelande)\s*-{3,}\s*|_{10,}\s*"
    r"|--\s*|(?:Sent from my|Sent from Outlook|Get Outlook for|Von meinem|Gesendet von meinem"
    r"|Envoy[ée] de mon|Envoy[ée] depuis mon|Enviado desde mi|Inviato da|Verzonden (?:vanaf|met) mijn"
    r"|Skickat från min)\b.{0,80}",
    re.IGNORECASE,
)
_FROM_LINE = re.compile(r"^\*?(?:From|Von|De|Da|Van|Från|Od)\s?:", re.IGNORECASE)
_NEXT_LINE = re.compile(
    r"^\*?(?:Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoy[ée]|[ÀA]|Objet|Enviado(?: el)?"
    r"|Fecha|Para|Asunto|Inviato|Data|Oggetto|Verzonden|Aan|Onderwerp|Skickat|Till|Ämne|Wysłano"
    r"|Do|Temat)\s?:",
    re.IGNORECASE,
)
_HEADER_LIKE = re.compile(r"^\*?[^\W\d][\w .'-]{0,30}\s?:", re.UNICODE)
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_signature", "moz-cite-prefix", "moz-signature", "yahoo_quoted"}
)
_OUTLOOK_RULES = ("border-top:solid#e1e1e1", "border-top:solid#b5c4df")


def precheck(raw: bytes, max_bytes: int) -> str | None:
    """Say why a message must be quarantined without parsing, if it must.

    Args:
        raw: the message as received.
        max_bytes: the largest message the service accepts.

    Returns:
        A short reason ("too large", "no header block"), or None when the message may be parsed.
    """
    if len(raw) > max_bytes:
        return f"message too large: {len(raw)} bytes, limit {max_bytes}"
    start = raw
    # An MTA pipe may prepend an mbox "From " line; the stdlib parser skips it too.
    if start.startswith(b"From "):
        start = start.partition(b"\n")[2]
    if not _FIELD.match(start):
        return "no header block"
    return None


def parse_message(
    raw: bytes, *, max_bytes: int = 10 * 1024 * 1024, max_parts: int = 200, max_depth: int = 20
) -> ParsedMail:
    """Extract what the core needs from one raw message; never raises.

    Args:
        raw: the message as received.
        max_bytes: bytes beyond this are cut before parsing.
        max_parts: MIME parts beyond this are cut before parsing.
        max_depth: multipart nesting deeper than this is cut before parsing.

    Returns:
        The ParsedMail; anything malformed that was survived is listed in ``defects``.
    """
    defects: list[str] = []
    try:
        return _parse(raw, max_bytes, max_parts, max_depth, defects)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: parsing never raises
        defects.append(f"parse failed: {type(exc).__name__}")
        return ParsedMail(defects=tuple(defects))


def _parse(
    raw: bytes, max_bytes: int, max_parts: int, max_depth: int, defects: list[str]
) -> ParsedMail:
    if len(raw) > max_bytes:
        defects.append(f"message cut at {max_bytes} bytes")
        raw = raw[:max_bytes]
    raw = _bound(raw, max_parts, max_depth, defects)
    try:
        msg = email.parser.BytesParser().parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - fall back to the headers alone
        defects.append(f"MIME structure unreadable: {type(exc).__name__}")
        msg = email.parser.BytesParser().parsebytes(raw, headersonly=True)
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        if key in _READ:
            found.setdefault(key, []).append(_unfold(str(value)))
    first = {key: values[0] for key, values in found.items()}
    from_name, from_addr = _parseaddr(first.get("from", ""), defects)
    recipients = _addresses(
        [v for key in ("to", "cc", "delivered-to", "x-original-to") for v in found.get(key, [])],
        defects,
    )
    subject = _clean(_decode_words(first.get("subject", ""), defects))
    body = _Body(msg, max_parts, defects)
    full_text, text = body.texts(forwarded=bool(_FORWARD_SUBJECT.match(subject)), defects=defects)
    defects.extend(dict.fromkeys(body.stdlib_defects))
    return ParsedMail(
        message_id=next(iter(_ids(first.get("message-id", ""))), ""),
        in_reply_to=_ids(first.get("in-reply-to", "")),
        references=_ids(first.get("references", "")),
        from_addr=from_addr,
        from_name=_clean(_decode_words(from_name, defects)),
        reply_to=_parseaddr(first.get("reply-to", ""), defects)[1],
        recipients=tuple(dict.fromkeys(recipients)),
        subject=subject,
        text=text,
        full_text=full_text,
        headers={key: tuple(_clean(v) for v in vs) for key, vs in found.items() if key in _KEPT},
        calendar=body.calendar,
        calendar_method=body.calendar_method,
        is_dsn=body.is_dsn,
        defects=tuple(dict.fromkeys(defects)),
    )


def _bound(raw: bytes, max_parts: int, max_depth: int, defects: list[str]) -> bytes:
    """Cut the raw bytes where nesting, part count or a header field exceeds its cap."""
    if len(raw) <= _HEADER_CAP:
        lowered = raw.lower()
        if lowered.count(b"boundary") + lowered.count(b"message/") < max_depth:
            if raw.count(b"\n--") < max_parts:
                return raw
    out: list[bytes] = []
    stack: list[bytes] = []
    pending: list[bytes] = []
    parts, in_head, ctype, length, cut, nested = 0, True, b"", 0, False, False
    for line in raw.split(b"\n"):
        if in_head and line.strip():
            if line[:1] not in b" \t":
                pending, nested = _declared(ctype, pending, nested)
                ctype = line if line[:13].lower() == b"content-type:" else b""
                length, cut = 0, False
            elif cut:
                continue
            elif ctype:
                ctype += line
            if length + len(line) > _HEADER_CAP:
                defects.append(f"header field cut at {_HEADER_CAP} bytes")
                line, cut = line[: max(0, _HEADER_CAP - length)], True  # noqa: PLW2901
            length += len(line)
        elif in_head:
            pending, nested = _declared(ctype, pending, nested)
            # An attached message/rfc822 nests too; its sentinel never matches a delimiter line.
            stack.extend([*pending, b"\n"] if nested else pending)
            in_head, ctype, pending, nested = nested, b"", [], False
            if len(stack) > max_depth:
                defects.append(f"MIME nesting deeper than {max_depth}: cut")
                break
        elif line.startswith(b"--") and stack:
            parts, in_head = _delimit(line.rstrip(), stack, parts)
            if parts > max_parts:
                defects.append(f"more than {max_parts} MIME parts: cut")
                break
        out.append(line)
    return b"\n".join(out)


def _delimit(line: bytes, stack: list[bytes], parts: int) -> tuple[int, bool]:
    """Apply a boundary delimiter line to the stack of open multiparts; True when a part starts."""
    for level in range(len(stack) - 1, -1, -1):
        if line == b"--" + stack[level]:
            del stack[level + 1 :]
            return parts + 1, True
        if line == b"--" + stack[level] + b"--":
            del stack[level:]
            break
    return parts, False


def _declared(field: bytes, pending: list[bytes], nested: bool) -> tuple[list[bytes], bool]:
    """Note a multipart boundary or an attached message declared by a Content-Type field."""
    lowered = field.lower()
    match = _BOUNDARY.search(field)
    if b"multipart/" in lowered and match:
        return [*pending, (match.group(1) or match.group(2)).strip()], nested
    return pending, nested or b"message/rfc822" in lowered


class _Body:
    """The body parts of one parsed message: text, HTML, calendar and DSN markers."""

    def __init__(self, msg: Message, max_parts: int, defects: list[str]) -> None:
        self.calendar = ""
        self.calendar_method = ""
        self.is_dsn = False
        self.stdlib_defects: list[str] = []
        self._texts: dict[tuple[bool, str], str] = {}
        stack: list[tuple[Message, bool]] = [(msg, False)]
        seen = 0
        while stack and seen < max_parts:
            part, inner = stack.pop()
            seen += 1
            try:
                self._visit(part, inner, stack, defects)
            except Exception as exc:  # noqa: BLE001 - one bad part must not lose the others
                defects.append(f"unreadable MIME part: {type(exc).__name__}")
        report = str(msg.get_param("report-type") or "").lower()
        self.is_dsn |= msg.get_content_type() == "multipart/report" and report == "delivery-status"

    def _visit(
        self, part: Message, inner: bool, stack: list[tuple[Message, bool]], defects: list[str]
    ) -> None:
        self.stdlib_defects.extend(type(d).__name__ for d in part.defects)
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self.is_dsn = True
        elif isinstance(payload, list):
            inner = inner or ctype.startswith("message/")
            stack.extend((p, inner) for p in reversed(payload) if isinstance(p, Message))
        elif ctype in ("text/calendar", "application/ics") or str(
            part.get_filename() or ""
        ).lower().endswith(".ics"):
            if not self.calendar:
                self.calendar = _decode(
                    part.get_payload(decode=True) or b"", part.get_content_charset(), defects
                )
                method = str(part.get_param("method") or "")
                found = _METHOD.search(self.calendar)
                self.calendar_method = (method or (found.group(1) if found else "")).strip().upper()
        elif (
            ctype in ("text/plain", "text/html") and part.get_content_disposition() != "attachment"
        ):
            text = _decode(
                part.get_payload(decode=True) or b"", part.get_content_charset(), defects
            )
            if ctype == "text/plain" and str(part.get_param("format") or "").lower() == "flowed":
                text = _unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
            if text.strip():
                self._texts.setdefault((inner, ctype), text)

    def texts(self, *, forwarded: bool, defects: list[str]) -> tuple[str, str]:
        """The whole body as text and its new text, from text/plain when there is one."""
        for inner in (False, True):
            plain = self._texts.get((inner, "text/plain"))
            if plain is not None:
                full = plain.replace("\r\n", "\n").replace("\r", "\n")
                return full, _new_text(full, forwarded=forwarded)
            markup = self._texts.get((inner, "text/html"))
            if markup is not None:
                if len(markup) > _HTML_CAP:
                    defects.append(f"HTML cut at {_HTML_CAP} characters")
                    markup = markup[:_HTML_CAP]
                full = _html_text(markup)
                stripped = _strip_quotes(markup, keep=forwarded, defects=defects)
                new = full if stripped is None else _html_text(stripped)
                return full, _new_text(new, forwarded=forwarded)
        return "", ""


class _QuoteStripper(HTMLParser):
    """Re-emits HTML without the quote and signature blocks mail clients mark up.

    Dropped blocks that turn out to hold a forwarded message are put back: a forwarded request is
    still a request.
    """

    def __init__(self, *, keep: bool) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.dropped = False
        self._keep = keep
        self._tag = ""
        self._depth = 0
        self._mark = -1
        self._cut = -1
        self._seen: list[str] = []
        self._before = ""
        self._tail = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Start dropping at a quote block, or cut the rest of the document at a reply header."""
        if not (self._keep or self._tag or self._cut >= 0):
            values = {name: (value or "").lower() for name, value in attrs}
            style = "".join(values.get("style", "").split())
            if tag == "div" and (
                values.get("id") in ("divrplyfwdmsg", "appendonsend")
                or any(rule in style for rule in _OUTLOOK_RULES)
            ):
                self._cut, self._seen, self._before = len(self.out), [], self._tail
            elif tag not in _VOID and (
                _QUOTE_CLASSES.intersection(values.get("class", "").split())
                or (tag == "blockquote" and values.get("type") == "cite")
            ):
                self._tag, self._depth, self._mark = tag, 0, len(self.out)
                self._seen, self._before = [], self._tail
        if tag == self._tag:
            self._depth += 1
        self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        """Close an element; settle a dropped block when its element ends."""
        self.out.append(f"</{tag}> " if tag in ("td", "th") else f"</{tag}>")
        if tag == self._tag:
            self._depth -= 1
            if self._depth == 0:
                self._settle(self._mark)
                self._tag = ""

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        """Keep self-closing tags as written."""
        self.out.append(self.get_starttag_text() or "")

    def handle_data(self, data: str) -> None:
        """Keep text, remembering what was said just before a block that may be dropped."""
        self.out.append(data)
        if self._tag or self._cut >= 0:
            self._seen.append(data)
        else:
            self._tail = (self._tail + data)[-300:]

    def handle_entityref(self, name: str) -> None:
        """Keep a named character reference as written."""
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        """Keep a numeric character reference as written."""
        self.out.append(f"&#{name};")

    def close(self) -> None:
        """Finish parsing and settle any block still open or cut."""
        super().close()
        if self._tag:
            self._settle(self._mark)
        if self._cut >= 0:
            self._settle(self._cut)

    def _settle(self, mark: int) -> None:
        if not (_FWD_ANYWHERE.search("".join(self._seen)) or _FWD_ANYWHERE.search(self._before)):
            del self.out[mark:]
            self.dropped = True


def _strip_quotes(markup: str, *, keep: bool, defects: list[str]) -> str | None:
    """The HTML without its quote blocks, or None when nothing was dropped."""
    stripper = _QuoteStripper(keep=keep)
    try:
        stripper.feed(markup)
        stripper.close()
    except Exception:  # noqa: BLE001 - html.parser still asserts on some broken markup
        defects.append("HTML quote blocks not removed: unparseable markup")
        return None
    return "".join(stripper.out) if stripper.dropped else None


def _html_text(markup: str) -> str:
    """Plain text of an HTML body: no wrapping, no images, link texts without their URLs."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.unicode_snob = True
    try:
        text = str(converter.handle(markup))
    except Exception:  # noqa: BLE001 - html2text is not hardened against hostile markup
        text = re.sub(r"<[^>]*>", " ", markup)
    return _MD_ESCAPE.sub(r"\1\2", text.replace("\xa0", " "))


def _new_text(body: str, *, forwarded: bool, depth: int = 0) -> str:
    """The text the sender wrote: quotes and signatures removed, forwarded content kept."""
    lines = [line.rstrip() for line in body[:_TEXT_CAP].splitlines()]
    cut = _first_cut(lines)
    marker = next((i for i in range(cut) if _FWD_LINE.match(lines[i])), -1)
    rest: list[str] = lines[marker + 1 :]
    if marker < 0 and forwarded and cut < len(lines):
        marker, rest = cut, lines[cut:]
    if marker < 0 or depth > 2:
        return _reply_only(lines[:cut])
    forward = _new_text("\n".join(_drop_forward_header(rest)), forwarded=False, depth=depth + 1)
    return "\n\n".join(part for part in (_reply_only(lines[:marker]), forward) if part)


def _first_cut(lines: list[str]) -> int:
    """Index of the first line that starts quoted history or a signature."""
    for index, line in enumerate(lines):
        if not line or line.startswith(">") or len(line) > 400:
            continue
        joined = f"{line} {lines[index + 1]}" if index + 1 < len(lines) else line
        if _QUOTE_HEADER.fullmatch(line) or _QUOTE_HEADER.fullmatch(joined):
            return index
        if _FROM_LINE.match(line) and any(
            _NEXT_LINE.match(nxt) for nxt in lines[index + 1 : index + 3]
        ):
            return index
    return len(lines)


def _drop_forward_header(lines: list[str]) -> list[str]:
    """Drop separators and the From/Date/Subject/To lines that head forwarded content."""
    filled = [line for line in lines if line.strip()]
    if filled and sum(line.startswith(">") for line in filled) * 5 >= len(filled) * 3:
        lines = [re.sub(r"^> ?", "", line) for line in lines]
    index = 0
    while index < len(lines) and (
        not lines[index].strip() or _QUOTE_HEADER.fullmatch(lines[index])
    ):
        index += 1
    if index < len(lines) and _HEADER_LIKE.match(lines[index]):
        while index < len(lines) and lines[index].strip():
            index += 1
    return lines[index:]


def _reply_only(lines: list[str]) -> str:
    """Run the reply parser on unquoted lines; long lines are hidden from its regexes."""
    longs: list[str] = []
    kept: list[str] = []
    for line in lines:
        if line.lstrip().startswith(">"):
            continue
        # Long lines cannot be reply headers, and the parser's regexes are quadratic in them.
        plain = line.replace("\ue000", "").replace("\ue001", "")
        if len(plain) > _LONG_LINE:
            longs.append(plain)
            plain = f"\ue000{len(longs) - 1}\ue001"
        kept.append(plain)
    text = "\n".join(kept).strip()
    if not text:
        return ""
    message = EmailMessage(text=text, languages=list(_LANGUAGES), keep_hyphen_lists=True).read()
    if not message.replies or message.replies[0].headers:
        return ""
    reply = re.sub(r"\ue000(\d+)\ue001", lambda m: longs[int(m.group(1))], message.replies[0].body)
    return re.sub(r"\n{3,}", "\n\n", reply).strip()


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if out and out[-1].endswith(" ") and out[-1] != "-- " and not line.startswith(">"):
            out[-1] = (out[-1][:-1] if delsp else out[-1]) + line.removeprefix(" ")
        else:
            out.append(line.removeprefix(" ") if line.startswith(" ") else line)
    return "\n".join(out)


def _decode(data: bytes, charset: str | None, defects: list[str]) -> str:
    """Decode with the declared charset; unknown ones fall back to UTF-8, then Latin-1."""
    name = (charset or "utf-8").strip().strip('"').lower()
    if name not in ("us-ascii", "ascii"):
        try:
            codec = codecs.lookup(name).name
            # Mail labelled Latin-1 is written by Windows clients: cp1252 has their quotes and dashes.
            return data.decode("cp1252" if codec == "iso8859-1" else codec, "replace")
        except (LookupError, ValueError, TypeError):
            defects.append(f"unknown charset {name[:40]}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps every byte, so this step cannot fail.
        return data.decode("latin-1")


def _unfold(value: str) -> str:
    """Undo header folding and repair raw 8-bit bytes (read as surrogates) as UTF-8 or Latin-1."""
    if not value.isascii():
        raw = value.encode("utf-8", "surrogateescape")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def _decode_words(value: str, defects: list[str]) -> str:
    """Decode RFC 2047 encoded words; a broken word is kept as written."""
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - HeaderParseError and worse on hostile input
        defects.append("undecodable encoded word")
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            # decode_header returns unencoded text as raw-unicode-escape bytes.
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(_decode(chunk, charset, defects))
    return "".join(out)


def _clean(value: str) -> str:
    """One line: control characters and line breaks collapsed to single spaces."""
    return " ".join(value.translate(_CONTROLS).split())


def _parseaddr(value: str, defects: list[str]) -> tuple[str, str]:
    """The display name (still encoded) and lowercased address of a single-address header."""
    try:
        name, addr = email.utils.parseaddr(value)
    except Exception:  # noqa: BLE001 - the stdlib address parser raises on some garbage
        defects.append("unreadable address header")
        return "", ""
    return name, _address(addr)


def _addresses(values: list[str], defects: list[str]) -> list[str]:
    """Lowercased addresses of address-list headers; unreadable ones are skipped."""
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:  # noqa: BLE001 - the stdlib address parser raises on some garbage
        defects.append("unreadable address header")
        return []
    return [addr for addr in (_address(a) for _, a in pairs) if addr]


def _address(addr: str) -> str:
    addr = addr.strip().lower()
    return addr if 0 < len(addr) <= 320 and addr.isprintable() and " " not in addr else ""


def _ids(value: str) -> tuple[str, ...]:
    """Message-IDs without angle brackets; bare tokens when none is bracketed."""
    found = _MSGID.findall(value) or value.split()
    return tuple(dict.fromkeys(found[:100]))
