"""Read the receiving server's own ``Authentication-Results`` header (RFC 8601) for DMARC/DKIM."""

from __future__ import annotations

import re

_RESULT = re.compile(r"\b(dmarc|dkim)\s*=\s*(\w+)(?P<props>[^;]*)", re.IGNORECASE)
_HEADER_D = re.compile(r"header\.(?:d|from)\s*=\s*([^\s;]+)", re.IGNORECASE)


def passes_dmarc(headers: tuple[str, ...], authserv_id: str, sender: str) -> bool:
    """Whether our topmost Authentication-Results header shows a DMARC or an aligned DKIM pass.

    Only the topmost header whose authserv-id matches counts: anything below it, or from another id, may
    have been written by the sender.

    Args:
        headers: the Authentication-Results values, topmost first.
        authserv_id: our receiving server's authserv-id.
        sender: the From address the result must align with.
    """
    domain = sender.rpartition("@")[2].lower()
    for header in headers:
        serv = header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""
        if serv != authserv_id.lower():
            continue
        for match in _RESULT.finditer(header):
            method, result = match.group(1).lower(), match.group(2).lower()
            if result != "pass":
                continue
            if method == "dmarc":
                return True
            aligned = _HEADER_D.search(match.group("props"))
            if aligned and (
                domain == aligned.group(1).lower() or domain.endswith("." + aligned.group(1).lower())
            ):
                return True
        return False
    return False
