"""Who may command the rig, and how often: the access token and the jog rate limit.

The panel binds 127.0.0.1 by default and then needs no token (only the local user can reach
it; the ``Host`` header is checked so a web page cannot reach it by DNS rebinding). Bound to
any other address it requires a token, generated with :mod:`secrets` and printed at start,
on every API call and on the websocket (``X-Patchpilot-Token`` header or ``token`` query).
Requests a browser sends from another site's page are refused too (:func:`is_cross_origin`),
so a web page the operator happens to visit cannot command the rig; only STOP ALL is exempt.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

__all__ = [
    "TOKEN_HEADER",
    "JogRateLimiter",
    "is_cross_origin",
    "is_loopback",
    "loopback_hosts",
    "new_token",
    "token_matches",
]

TOKEN_HEADER = "X-Patchpilot-Token"


def new_token() -> str:
    """A fresh random token (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def token_matches(expected: str | None, given: str | None) -> bool:
    """True when no token is required, or ``given`` is it (constant-time comparison)."""
    if expected is None:
        return True
    if given is None:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def is_cross_origin(headers: Mapping[str, str]) -> bool:
    """True for a request a browser sent from another site's page (CSRF, websocket hijacking).

    Browsers send ``Origin`` (and ``Sec-Fetch-Site``) with cross-origin requests, and a page
    cannot forge them; the panel's own page is same-origin, and curl sends neither.
    """
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    host = headers.get("host", "")
    parsed = urlsplit(origin)
    return parsed.scheme not in ("http", "https") or parsed.netloc.lower() != host.lower()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_hosts(port: int | None = None) -> list[str]:
    """``Host`` header values a local browser sends to a loopback-bound panel."""
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1"]
    if port is not None:
        hosts += [f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")]
    return hosts


class JogRateLimiter:
    """At most ``max_per_s`` jogs per pipette in any one-second window.

    Parameters
    ----------
    max_per_s
        Jogs allowed per second and pipette (``panel.max_jogs_per_s``); at least one is always
        allowed per second.
    clock
        Seconds, monotonic.

    Raises
    ------
    ValueError
        ``max_per_s`` is not a positive finite number.
    """

    def __init__(self, max_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (max_per_s > 0 and max_per_s < float("inf")):
            raise ValueError(f"max_jogs_per_s must be positive and finite, got {max_per_s}")
        self.max_per_window = max(1, int(max_per_s))
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {}

    def allow(self, pipette: str) -> bool:
        """Count one jog of ``pipette`` and say whether it may go now."""
        now = self._clock()
        with self._lock:
            recent = self._recent.setdefault(pipette, deque())
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.max_per_window:
                return False
            recent.append(now)
            return True
