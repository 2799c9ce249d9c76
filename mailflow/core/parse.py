"""Turn raw RFC 5322 bytes into a ParsedMail without ever raising.

Size, MIME nesting, part count and header length are capped on the raw bytes before the stdlib
parser sees them; it then runs with the fast ``compat32`` policy and only the headers ParsedMail
needs are decoded. The new text is the preferred body (text/plain, else HTML without the clients'
quote blocks) with quoted history, signatures and forward headers removed by ``core.quotes``.
"""

from __future__ import annotations

import codecs
import email.header
import email.parser
import email.utils
import re
from email.message import Message

from mailflow.core.model import ParsedMail
from mailflow.core.quotes import FORWARD_SUBJECT, html_text, new_text, strip_quotes

_HEADER_CAP = 16 * 1024
_HTML_CAP = 512 * 1024
_KEPT = frozenset(
    {"auto-submitted", "precedence", "list-id", "list-unsubscribe", "list-post", "x-autoreply"}
    | {"x-autorespond", "x-auto-response-suppress", "x-loop", "x-mailflow", "return-path"}
    | {"authentication-results", "content-type", "delivered-to", "x-original-to", "x-mailer"}
    | {"x-failed-recipients", "feedback-id", "x-ms-exchange-generated-message-source"}
)
_READ = _KEPT | {"message-id", "in-reply-to", "references", "from", "reply-to", "subject", "to", "cc"}
_CONTROLS = dict.fromkeys([*range(32), *range(127, 160), 0x2028, 0x2029], " ")
_FIELD = re.compile(rb"[!-9;-~]{1,200}:")
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]+)"|([^;\s"]+))', re.IGNORECASE)
_METHOD = re.compile(r"^METHOD\s*:\s*([A-Za-z-]+)", re.MULTILINE | re.IGNORECASE)
_ATOMS = r'[^\s<>"(),;:\\@\[\]]+@[^\s<>"(),;:\\@\[\]]+'
_SIMPLE_ADDRESS = re.compile(rf'\s*(?:({_ATOMS})|([^<>"(),;:\\@]*|"[^"\\]*")\s*<({_ATOMS})>)\s*')
_MSGID = re.compile(r"<([^<>\s]{1,250})>")


def precheck(raw: bytes, max_bytes: int) -> str | None:
    """Say why a message must be quarantined without parsing it, if it must.

    Args:
        raw: the message as received.
        max_bytes: the largest message the service accepts.

    Returns:
        A short reason (too large, no header block), or None when the message may be parsed.

    """
    if len(raw) > max_bytes:
        return f"message too large: {len(raw)} bytes, limit {max_bytes}"
    # An MTA pipe may prepend an mbox "From " line; the stdlib parser skips it too.
    start = raw.partition(b"\n")[2] if raw.startswith(b"From ") else raw
    return None if _FIELD.match(start) else "no header block"


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
        The ParsedMail; whatever malformation it survived is listed in ``defects``.

    """
    defects: list[str] = []
    try:
        return _parse(raw, max_bytes, max_parts, max_depth, defects)
    except Exception as exc:  # The last line of defence: parsing never takes the service down.
        defects.append(f"parse failed: {type(exc).__name__}")
        return ParsedMail(defects=tuple(defects))


def _parse(raw: bytes, max_bytes: int, max_parts: int, max_depth: int, defects: list[str]) -> ParsedMail:
    if len(raw) > max_bytes:
        defects.append(f"message cut at {max_bytes} bytes")
    raw = _bound(raw[:max_bytes], max_parts, max_depth, defects)
    try:
        msg = email.parser.BytesParser().parsebytes(raw)
    except Exception as exc:  # A structure the stdlib cannot walk still has readable headers.
        defects.append(f"MIME structure unreadable: {type(exc).__name__}")
        msg = email.parser.BytesParser().parsebytes(raw, headersonly=True)
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        if (key := str(name).strip().lower()) in _READ:
            found.setdefault(key, []).append(_unfold(str(value)))
    first = {key: values[0] for key, values in found.items()}
    from_name, from_addr = _addresses(first.get("from", ""), defects)[0]
    rcpt = [v for key in ("to", "cc", "delivered-to", "x-original-to") for v in found.get(key, [])]
    subject = _clean(_decode_words(first.get("subject", ""), defects))
    body = _Body(msg, max_parts, defects)
    full_text, text = body.texts(forwarded=bool(FORWARD_SUBJECT.match(subject)), defects=defects)
    return ParsedMail(
        message_id=next(iter(_ids(first.get("message-id", ""))), ""),
        in_reply_to=_ids(first.get("in-reply-to", "")),
        references=_ids(first.get("references", "")),
        from_addr=from_addr,
        from_name=_clean(_decode_words(from_name, defects)),
        reply_to=_addresses(first.get("reply-to", ""), defects)[0][1],
        recipients=tuple(dict.fromkeys(a for v in rcpt for _, a in _addresses(v, defects) if a)),
        subject=subject,
        # PostgreSQL text columns refuse NUL characters.
        text=text.replace("\x00", ""),
        full_text=full_text.replace("\x00", ""),
        headers={key: tuple(map(_clean, vs)) for key, vs in found.items() if key in _KEPT},
        calendar=body.calendar,
        calendar_method=body.calendar_method,
        is_dsn=body.is_dsn,
        defects=tuple(dict.fromkeys(defects)),
    )


def _bound(raw: bytes, max_parts: int, max_depth: int, defects: list[str]) -> bytes:
    """Cut the raw bytes where nesting, part count or a header field exceeds its cap."""
    # Typical mail is small and flat: skip the line scan when no cap can be reached.
    lowered = raw.lower() if len(raw) <= _HEADER_CAP else b""
    nesting = lowered.count(b"boundary") + lowered.count(b"message/")
    if lowered and nesting < max_depth and raw.count(b"\n--") < max_parts:
        return raw
    return _Bounder(max_parts, max_depth).cut(raw, defects)


class _Bounder:
    """One pass over the lines: track open multipart boundaries and each header field's length."""

    def __init__(self, max_parts: int, max_depth: int) -> None:
        self.max_parts, self.max_depth = max_parts, max_depth
        self.stack: list[bytes] = []
        self.pending: list[bytes] = []
        self.parts, self.nested = 0, False
        self.ctype, self.length, self.cut_field = b"", 0, False

    def cut(self, raw: bytes, defects: list[str]) -> bytes:
        """Return ``raw`` up to the first line that breaks a cap, with long header fields cut."""
        out: list[bytes] = []
        in_head = True
        for line in raw.split(b"\n"):
            kept: bytes | None = line
            if in_head and line.strip():
                kept = self._header(line, defects)
            elif in_head:
                in_head = self._open()
                if len(self.stack) > self.max_depth:
                    defects.append(f"MIME nesting deeper than {self.max_depth}: cut")
                    break
            elif line.startswith(b"--") and self.stack:
                in_head = self._delimit(line.rstrip())
                if self.parts > self.max_parts:
                    defects.append(f"more than {self.max_parts} MIME parts: cut")
                    break
            if kept is not None:
                out.append(kept)
        return b"\n".join(out)

    def _header(self, line: bytes, defects: list[str]) -> bytes | None:
        """Keep a header line, cut to the field's cap; None drops a continuation past the cap."""
        if line[:1] not in b" \t":
            self._declare(self.ctype)
            self.ctype = line if line[:13].lower() == b"content-type:" else b""
            self.length, self.cut_field = 0, False
        elif self.cut_field:
            return None
        elif self.ctype:
            self.ctype += line
        if self.length + len(line) > _HEADER_CAP:
            defects.append(f"header field cut at {_HEADER_CAP} bytes")
            line, self.cut_field = line[: max(0, _HEADER_CAP - self.length)], True
        self.length += len(line)
        return line

    def _declare(self, field: bytes) -> None:
        lowered = field.lower()
        if b"multipart/" in lowered and (match := _BOUNDARY.search(field)):
            self.pending.append((match.group(1) or match.group(2)).strip())
        self.nested |= b"message/rfc822" in lowered

    def _open(self) -> bool:
        """End a header block: its multipart opens; an attached message's headers follow."""
        self._declare(self.ctype)
        self.ctype = b""
        # An attached message nests too; its sentinel never equals a delimiter line.
        self.stack.extend([*self.pending, b"\n"] if self.nested else self.pending)
        nested, self.pending, self.nested = self.nested, [], False
        return nested

    def _delimit(self, line: bytes) -> bool:
        """Apply a delimiter line to the open multiparts; True when a part's headers follow."""
        for level in range(len(self.stack) - 1, -1, -1):
            if line == b"--" + self.stack[level]:
                del self.stack[level + 1 :]
                self.parts += 1
                return True
            if line == b"--" + self.stack[level] + b"--":
                del self.stack[level:]
                break
        return False


class _Body:
    """The body parts of a parsed message: first texts, first calendar, DSN markers."""

    def __init__(self, msg: Message, max_parts: int, defects: list[str]) -> None:
        self.calendar = self.calendar_method = ""
        self.is_dsn = False
        self._texts: dict[tuple[bool, str], str] = {}
        stack: list[tuple[Message, bool]] = [(msg, False)]
        for _ in range(max_parts):
            if not stack:
                break
            part, inner = stack.pop()
            try:
                defects.extend(type(defect).__name__ for defect in part.defects)
                self._visit(part, inner, stack, defects)
            except Exception as exc:  # One unreadable part must not lose the others.
                defects.append(f"unreadable MIME part: {type(exc).__name__}")
        if msg.get_content_type() == "multipart/report":
            self.is_dsn |= str(msg.get_param("report-type")).lower() == "delivery-status"

    def _visit(
        self, part: Message, inner: bool, stack: list[tuple[Message, bool]], defects: list[str]
    ) -> None:
        ctype, payload = part.get_content_type(), part.get_payload()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self.is_dsn = True
            return
        if isinstance(payload, list):
            inner = inner or ctype.startswith("message/")
            stack.extend((p, inner) for p in reversed(payload) if isinstance(p, Message))
            return
        params: dict[str, str] = {}
        for name, value in part.get_params(failobj=[])[1:]:
            params[name] = email.utils.collapse_rfc2231_value(value).strip()
            if not params[name]:
                defects.append(f"Content-Type parameter {name!r} without a value")
        if ctype in ("text/plain", "text/html") and part.get_content_disposition() != "attachment":
            text = _part_text(part, params.get("charset"), defects)
            if ctype == "text/plain" and params.get("format", "").lower() == "flowed":
                text = _unflow(text, delsp=params.get("delsp", "").lower() == "yes")
            if text.strip():
                text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
                self._texts.setdefault((inner, ctype), text)
        elif not self.calendar and (
            ctype in ("text/calendar", "application/ics")
            or str(part.get_filename(params.get("name", ""))).lower().endswith(".ics")
        ):
            self.calendar = _part_text(part, params.get("charset"), defects)
            found = _METHOD.search(self.calendar)
            method = params.get("method") or (found.group(1) if found else "")
            self.calendar_method = method.strip().upper()

    def texts(self, *, forwarded: bool, defects: list[str]) -> tuple[str, str]:
        """Return the whole body as text and its new text, from text/plain when there is one."""
        for inner in (False, True):
            if (plain := self._texts.get((inner, "text/plain"))) is not None:
                return plain, new_text(plain, forwarded=forwarded)
            if (markup := self._texts.get((inner, "text/html"))) is not None:
                if len(markup) > _HTML_CAP:
                    defects.append(f"HTML cut at {_HTML_CAP} characters")
                    markup = markup[:_HTML_CAP]
                full = html_text(markup)
                stripped = strip_quotes(markup, keep=forwarded, defects=defects)
                return full, new_text(full if stripped is None else html_text(stripped), forwarded=forwarded)
        return "", ""


def _part_text(part: Message, charset: str | None, defects: list[str]) -> str:
    """Decode a leaf part's payload (transfer encoding, then charset) to text."""
    data = part.get_payload(decode=True)
    return _decode(data if isinstance(data, bytes) else b"", charset, defects)


def _unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        unstuffed = line.removeprefix(" ")
        if out and out[-1].endswith(" ") and out[-1] != "-- " and not line.startswith(">"):
            out[-1] = (out[-1][:-1] if delsp else out[-1]) + unstuffed
        else:
            out.append(unstuffed)
    return "\n".join(out)


def _decode(data: bytes, charset: str | None, defects: list[str]) -> str:
    """Decode with the declared charset; unknown ones fall back to UTF-8, then Latin-1."""
    name = (charset or "utf-8").strip().strip('"').lower()
    if name not in ("us-ascii", "ascii"):
        try:
            codec = codecs.lookup(name).name
            # Mail labelled Latin-1 comes from Windows clients: cp1252 has their quotes and dashes.
            return data.decode("cp1252" if codec == "iso8859-1" else codec, "replace")
        except (LookupError, ValueError, TypeError):
            defects.append(f"unknown charset {name[:40]}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # Latin-1 maps every byte, so this cannot fail.


def _unfold(value: str) -> str:
    """Undo header folding; raw 8-bit bytes (read as surrogates) are read as UTF-8 or Latin-1."""
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
    except Exception:  # HeaderParseError, and worse on hostile input.
        defects.append("undecodable encoded word")
        return value
    # decode_header hands unencoded text back as raw-unicode-escape bytes without a charset.
    return "".join(
        chunk
        if isinstance(chunk, str)
        else chunk.decode("raw-unicode-escape", "replace")
        if charset is None
        else _decode(chunk, charset, defects)
        for chunk, charset in chunks
    )


def _clean(value: str) -> str:
    """Put a value on one line: control characters and line breaks become single spaces."""
    return " ".join(value.translate(_CONTROLS).split())


def _addresses(value: str, defects: list[str]) -> list[tuple[str, str]]:
    """Return the (encoded display name, lowercased address) pairs of one address header.

    The common shapes (``a@b``, ``Name <a@b>``) are read by a regex: ``getaddresses`` is slow.
    An unreadable value gives ``[("", "")]`` and a defect.
    """
    if (simple := _SIMPLE_ADDRESS.fullmatch(value)) and _address(simple.group(1) or simple.group(3)):
        name, addr = ("", simple.group(1)) if simple.group(1) else simple.group(2, 3)
        return [(name.strip().removeprefix('"').removesuffix('"'), _address(addr))]
    try:
        pairs = [(name, _address(addr)) for name, addr in email.utils.getaddresses([value])]
    except Exception:  # The stdlib address parser raises on some garbage.
        pairs = []
    # An empty group ("undisclosed-recipients:;") is well formed.
    if value.strip() and not value.rstrip().endswith(";") and not any(a for _, a in pairs):
        defects.append(f"no address readable in {_clean(value)[:60]!r}")
    return pairs or [("", "")]


def _address(addr: str) -> str:
    addr = addr.strip().lower()
    return addr if 0 < len(addr) <= 320 and addr.isprintable() and " " not in addr else ""


def _ids(value: str) -> tuple[str, ...]:
    """Return Message-IDs without angle brackets; bare tokens when none is bracketed."""
    return tuple(dict.fromkeys((_MSGID.findall(value) or value.split())[:100]))
