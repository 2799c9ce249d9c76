"""Find the new text of a mail body: what the sender wrote, without what they quoted.

Mail clients mark quoted history in HTML (Outlook's reply divider, Gmail, Yahoo and Thunderbird
quote classes, Apple's ``blockquote type="cite"``); ``strip_quotes`` drops those blocks before
``html_text`` converts the HTML. ``new_text`` then cuts plain text at quote headers ("On ... wrote:",
Outlook's From/Sent block), ">" quotes and signatures, with the reply patterns of
mail-parser-reply applied line by line. Forwarded content is kept: a forwarded request is still a
request.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import html2text
from mailparser_reply import EmailMessage

_LONG_LINE = 200
_TEXT_CAP = 256 * 1024
# Polish is left out: its reply-header pattern cuts at any single line starting "Data:" or "Do:".
_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "sv")
# The reply parser's patterns, compiled once for these languages and applied line by line below.
_REPLY_PARSER = EmailMessage(text="", languages=list(_LANGUAGES), keep_hyphen_lists=True)
_LIB_HEADER, _LIB_SIGNATURE = _REPLY_PARSER.HEADER_REGEX, _REPLY_PARSER.SIGNATURE_REGEX
_LIB_DISCLAIMERS = _REPLY_PARSER.DISCLAIMERS_REGEX
_MD_ESCAPE = re.compile(r"^(\s*\d*)\\([-+.])", re.MULTILINE)
FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|wg|tr|rv|i|vs|vb|doorst)\s*:", re.IGNORECASE)
_FWD = (
    r"-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transf[ée]r[ée]"
    r"|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht"
    r"|vidarebefordrat meddelande)\s*-{2,}|(?:begin forwarded message"
    r"|anfang der weitergeleiteten (?:e-mail|nachricht)|inicio del mensaje reenviado"
    r"|d[ée]but du message r[ée]exp[ée]di[ée]|inizio messaggio inoltrato)\s?:"
)
_FWD_LINE = re.compile(rf"(?:{_FWD})\s*", re.IGNORECASE)
_FWD_ANYWHERE = re.compile(_FWD, re.IGNORECASE)
_QUOTE_HEADER = re.compile(
    r"(?:On\s.{1,300}?\swrote|Am\s.{1,300}?\sschrieb\s.{0,300}?|Le\s.{1,300}?\sa\s[ée]crit"
    r"|El\s.{1,300}?\sescribi[óo]|Il\s.{1,300}?\sha\sscritto|Op\s.{1,300}?\sschreef\s.{0,300}?"
    r"|Den\s.{1,300}?\sskrev\s.{0,300}?|.{1,300}?\snapisał(?:\(a\))?)\s?:\s*"
    r"|-{3,}\s*(?:Original Message|Urspr[üu]ngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Ursprungligt meddelande)\s*-{3,}\s*|_{10,}\s*",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"--\s*|(?:Sent from my|Sent from Outlook|Get Outlook for|Von meinem|Gesendet von meinem"
    r"|Envoy[ée] de mon|Envoy[ée] depuis mon|Enviado desde mi|Inviato da|Verzonden vanaf mijn"
    r"|Verzonden met|Skickat från min)\b.{0,80}",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(r"(?:On|Am|Le|El|Il|Op|Den)\s|.{1,300}?\snapisał", re.IGNORECASE)
_FROM_LINE = re.compile(r"\*?(?:From|Von|De|Da|Van|Från|Od)\s?:", re.IGNORECASE)
_NEXT_LINE = re.compile(
    r"\*?(?:Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoy[ée]|[ÀA]|Objet|Enviado(?: el)?"
    r"|Fecha|Para|Asunto|Inviato|Data|Oggetto|Verzonden|Aan|Onderwerp|Skickat|Till|Ämne|Wysłano"
    r"|Do|Temat)\s?:",
    re.IGNORECASE,
)
_HEADER_LIKE = re.compile(r"\*?[^\W\d][\w .'-]{0,30}\s?:")
_VOID = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"))
_QUOTE_CLASSES = {"gmail_quote", "gmail_signature", "moz-cite-prefix", "moz-signature", "yahoo_quoted"}
_OUTLOOK_RULES = ("border-top:solid#e1e1e1", "border-top:solid#b5c4df")


class _QuoteStripper(HTMLParser):
    """Re-emit HTML without the quote and signature blocks mail clients mark up.

    A dropped block that turns out to hold a forwarded message is put back: a forwarded request
    is still a request.
    """

    def __init__(self, *, keep: bool) -> None:
        super().__init__()
        self.out: list[str] = []
        self.dropped, self._keep = False, keep
        self._tag, self._depth, self._mark, self._cut = "", 0, -1, -1
        self._seen: list[str] = []
        self._before = self._tail = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Start dropping at a quote block, or cut the rest of the document at a reply header."""
        if not (self._keep or self._tag or self._cut >= 0):
            values = {name: (value or "").lower() for name, value in attrs}
            style = "".join(values.get("style", "").split())
            if tag == "div" and (
                values.get("id") in ("divrplyfwdmsg", "appendonsend")
                or any(r in style for r in _OUTLOOK_RULES)
            ):
                self._cut, self._seen, self._before = len(self.out), [], self._tail
            elif tag not in _VOID and (
                _QUOTE_CLASSES.intersection(values.get("class", "").split())
                or (tag == "blockquote" and values.get("type") == "cite")
            ):
                self._tag, self._mark, self._seen, self._before = tag, len(self.out), [], self._tail
        self._depth += tag == self._tag
        self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        """Close an element (a cell gets a space after it); settle a dropped block."""
        if tag in _VOID:
            return
        self.out.append(f"</{tag}> " if tag in ("td", "th") else f"</{tag}>")
        if tag == self._tag:
            self._depth -= 1
            if self._depth == 0:
                self._settle(self._mark)
                self._tag = ""

    def handle_data(self, data: str) -> None:
        """Keep text, remembering what came just before a block that may be dropped."""
        self.out.append(html.escape(data, quote=False))
        if self._tag or self._cut >= 0:
            self._seen.append(data)
        else:
            self._tail = (self._tail + data)[-300:]

    def close(self) -> None:
        """Finish parsing and settle a block still open or cut."""
        super().close()
        if self._tag:
            self._settle(self._mark)
        if self._cut >= 0:
            self._settle(self._cut)

    def _settle(self, mark: int) -> None:
        if not (_FWD_ANYWHERE.search("".join(self._seen)) or _FWD_ANYWHERE.search(self._before)):
            del self.out[mark:]
            self.dropped = True


def strip_quotes(markup: str, *, keep: bool, defects: list[str]) -> str | None:
    """Return the HTML without its quote blocks, or None when nothing was dropped.

    Args:
        markup: the HTML body.
        keep: keep every block (the message is a forward, so quoted content is the request).
        defects: where unparseable markup is reported.

    Returns:
        The HTML without the dropped blocks, or None when none was dropped or parsing failed.

    """
    stripper = _QuoteStripper(keep=keep)
    try:
        stripper.feed(markup)
        stripper.close()
    except Exception:  # html.parser still asserts on some broken markup.
        defects.append("HTML quote blocks not removed: unparseable markup")
        return None
    return "".join(stripper.out) if stripper.dropped else None


def html_text(markup: str) -> str:
    """Convert HTML to plain text: no wrapping, no images, link texts without their URLs.

    Args:
        markup: the HTML to convert; hostile markup falls back to stripping the tags.

    Returns:
        The text, trailing spaces removed and runs of blank lines squeezed to one.

    """
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = converter.ignore_links = converter.ignore_emphasis = True
    converter.ignore_tables = converter.unicode_snob = True
    try:
        text = str(converter.handle(markup))
    except Exception:  # html2text is not hardened against hostile markup.
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    text = "\n".join(line.rstrip() for line in text.replace("\xa0", " ").splitlines())
    return re.sub(r"\n{3,}", "\n\n", _MD_ESCAPE.sub(r"\1\2", text)).strip()


def new_text(body: str, *, forwarded: bool, depth: int = 0) -> str:
    """Return what the sender wrote: quotes and signatures removed, forwarded content kept.

    Args:
        body: the plain text body.
        forwarded: the subject marks a forward, so quoted history is forwarded content.
        depth: recursion depth into nested forwards; beyond 3 they are not unpacked.

    Returns:
        The new text, forwarded content without its forward header.

    """
    lines = [line.rstrip() for line in body[:_TEXT_CAP].splitlines()]
    history, signature, skip = _cuts(lines)
    # A forward marker counts unless quoted history starts before it; a signature may precede it.
    marker = next((i for i in range(history) if _FWD_LINE.fullmatch(lines[i])), -1)
    rest = lines[marker + 1 :]
    if marker < 0 and forwarded and history < len(lines):
        marker, rest = history, lines[history:]
    if marker >= 0 and depth < 3:
        head = new_text("\n".join(lines[:marker]), forwarded=False, depth=depth + 1)
        tail = new_text("\n".join(_drop_forward_header(rest)), forwarded=False, depth=depth + 1)
        return "\n\n".join(part for part in (head, tail) if part)
    cut = min(history, signature)
    text = _reply_only([line for index, line in enumerate(lines[:cut]) if index not in skip])
    postscript = _postscript(lines[:history])
    if postscript and postscript not in text:
        # Written after the sign-off, so cut with it: a request in a P.S. is still the sender's request.
        return f"{text}\n\n{postscript}" if text else postscript
    return text


# "P.S.", "PS:", "P.P.S." and the French "P.-S." and Spanish "P.D.", at a line's start.
_POSTSCRIPT = re.compile(r"(?:p\.?\s?){1,2}s(?:[.:]|\s|$)|p\.\s?-\s?s\.|p\.\s?d\.", re.IGNORECASE)


def _postscript(lines: list[str]) -> str:
    """The sender's postscript among ``lines`` (the text before any quoted history): its paragraph, or ""."""
    for index, line in enumerate(lines):
        if _POSTSCRIPT.match(line.lstrip()):
            block = []
            for more in lines[index:]:
                if not more.strip() or more.startswith(">") or _SIGNATURE.fullmatch(more):
                    break
                block.append(more.strip())
            return "\n".join(block)
    return ""


def _cuts(lines: list[str]) -> tuple[int, int, set[int]]:
    """Find where quoted history starts, where the first signature starts, and lines to skip.

    An attribution ("On ... wrote:") followed by ">" lines only introduces a quote: its lines are
    skipped, and text after the quote (bottom or inline posting) is still new.
    """
    signature, skip = len(lines), set[int]()
    for index, line in enumerate(lines):
        if not line or line.startswith(">") or len(line) > 400:
            continue
        if signature == len(lines) and _SIGNATURE.fullmatch(line):
            signature = index
        following = lines[index + 1 : index + 3]
        # Every history marker holds a colon or starts with a rule of dashes or underscores.
        if ":" not in line and ":" not in "".join(following[:1]) and line[0] not in "-_":
            continue
        if _FROM_LINE.match(line) and any(_NEXT_LINE.match(nxt) for nxt in following):
            return index, signature, skip
        joined = f"{line} {following[0]}" if following else line
        span = 1 if _QUOTE_HEADER.fullmatch(line) else 2 if _QUOTE_HEADER.fullmatch(joined) else 0
        if not span:
            continue
        after = next((nxt for nxt in lines[index + span :] if nxt.strip()), "")
        if not (_ATTRIBUTION.match(line) and after.startswith(">")):
            return index, signature, skip
        skip.update(range(index, index + span))
    return len(lines), signature, skip


def _drop_forward_header(lines: list[str]) -> list[str]:
    """Drop separators and the From/Date/Subject/To lines that head forwarded content."""
    filled = [line for line in lines if line.strip()]
    if filled and sum(line.startswith(">") for line in filled) * 5 >= len(filled) * 3:
        lines = [re.sub(r"^> ?", "", line) for line in lines]
    index = 0
    separators = (_QUOTE_HEADER, _SIGNATURE)
    while index < len(lines) and (
        not lines[index].strip() or any(sep.fullmatch(lines[index]) for sep in separators)
    ):
        index += 1
    if index < len(lines) and _HEADER_LIKE.match(lines[index]):
        while index < len(lines) and lines[index].strip():
            index += 1
    return lines[index:]


def _reply_only(lines: list[str]) -> str:
    """Cut the unquoted lines at the first reply header or signature mail-parser-reply knows.

    Its ``read()`` runs the header regex at every position (0.3 ms for 350 characters); the
    patterns only match at a line start, so they are tried there. Long lines are skipped: they
    cannot be headers and the patterns are quadratic in them.
    """
    kept = "\n".join(line.strip() for line in lines if not line.lstrip().startswith(">"))
    # Runs of blank lines are squeezed: the signature pattern backtracks over whitespace.
    text = re.sub(r"\n{3,}", "\n\n", kept).strip()
    for start in (0, *(m.end() for m in re.finditer("\n", text))):
        end = text.find("\n", start)
        if (end if end >= 0 else len(text)) - start <= _LONG_LINE and _LIB_HEADER.match(text, start):
            # A header at the very start means everything was quoted.
            text = text[:start]
            break
    if signature := _LIB_SIGNATURE.search(text):
        text = text[: signature.start()]
    for disclaimer in _LIB_DISCLAIMERS.findall(text):
        text = text.replace(disclaimer.strip(), "")
    return re.sub(r"\n{3,}", "\n\n", text).strip()
