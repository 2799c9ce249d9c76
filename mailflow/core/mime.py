"""A small, fast MIME writer for the mail mailflow sends.

The stdlib ``email`` package folds and encodes every header through general machinery that costs about
0.1 ms per header, several milliseconds per message; the service queues three or more mails per request and
must handle hundreds of requests a second. Our messages have a fixed, simple shape, so they are written here
directly: header text is checked and cut to one line by the caller, non-ASCII header text is encoded by the
stdlib's RFC 2047 encoder (:class:`email.header.Header`), bodies are quoted-printable by the C-coded
:func:`binascii.b2a_qp`, and the multipart boundary is derived from the Message-ID, so the output is
deterministic (no randomness in the core). Every message is parsed back by ``email`` in the tests.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header

_MAX_LINE = 78


@dataclass(frozen=True, slots=True)
class Part:
    """A leaf MIME part: its Content-Type (with parameters), extra headers and its encoded body bytes."""

    content_type: str
    body: bytes
    encoding: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Multipart:
    """A multipart container: ``alternative``, ``mixed`` or ``related``."""

    subtype: str
    parts: tuple[Part | Multipart, ...]


def text_part(
    text: str, subtype: str, *, params: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> Part:
    """A UTF-8 text part, quoted-printable, with CRLF line ends."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    body = binascii.b2a_qp(data, istext=True)
    ctype = f'text/{subtype}; charset="utf-8"{params}'
    return Part(ctype, body, "quoted-printable", headers)


def base64_part(data: bytes, content_type: str, *, headers: tuple[tuple[str, str], ...] = ()) -> Part:
    """A part carried as base64 in 76-character lines."""
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return Part(content_type, b"\r\n".join(lines), "base64", headers)


def fold(name: str, value: str) -> str:
    """One header line, folded at spaces to about 78 characters; non-ASCII values as RFC 2047 words."""
    if not value.isascii():
        encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        return f"{name}: {encoded}\r\n"
    line = f"{name}: {value}"
    if len(line) <= _MAX_LINE:
        return line + "\r\n"
    lines: list[str] = []
    current = f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > _MAX_LINE and current != f"{name}:":
            lines.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
    lines.append(current)
    return "\r\n".join(lines) + "\r\n"


def _boundary(seed: str, depth: int) -> str:
    # "=_" cannot occur in quoted-printable or base64 bodies, so the boundary never collides with content.
    return f"=_mf{depth}_{hashlib.sha256(seed.encode()).hexdigest()[:28]}"


def _write(node: Part | Multipart, seed: str, depth: int, out: list[bytes]) -> None:
    if isinstance(node, Part):
        head = [fold("Content-Type", node.content_type), f"Content-Transfer-Encoding: {node.encoding}\r\n"]
        head.extend(fold(k, v) for k, v in node.headers)
        out.append("".join(head).encode("ascii"))
        out.append(b"\r\n")
        out.append(node.body)
        return
    boundary = _boundary(seed, depth)
    out.append(f'Content-Type: multipart/{node.subtype};\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"))
    for part in node.parts:
        out.append(f"\r\n--{boundary}\r\n".encode("ascii"))
        _write(part, seed, depth + 1, out)
    out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))


def build(headers: Sequence[tuple[str, str]], body: Part | Multipart, seed: str) -> bytes:
    """Write a whole message: top-level headers, ``MIME-Version``, then the body tree.

    Args:
        headers: (name, value) pairs, values already on one line.
        body: the body tree.
        seed: a unique string for this message (its Message-ID), from which boundaries are derived.
    """
    out = ["".join(fold(name, value) for name, value in headers).encode("ascii"), b"MIME-Version: 1.0\r\n"]
    _write(body, seed, 0, out)
    return b"".join(out)
