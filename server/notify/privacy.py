"""Apprise URLs as people may see them: Apprise's own privacy rendering, never the stored URL.

An Apprise URL is a credential: for ``wecombot://KEY``, ``dingtalk://…@TOKEN``
or ``tgram://BOT:TOKEN`` the "host" is the secret itself, so cutting a URL
down to its host (what the dashboard did) shows the secret. Each Apprise
plugin knows which of its parts are secret and masks them when asked for
``url(privacy=True)``; this module is the one place that asks, and every
place that shows a URL (dashboard, API, CLI, logs) goes through it.

The query string is left out as well: Apprise masks secrets there for its
own parameters but prints custom HTTP headers (``json://host/?+Authorization=…``)
unmasked, and the rest are defaults nobody needs on a phone screen.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["private_url", "private_urls"]

_UNKNOWN = "…"


@lru_cache(maxsize=1024)
def private_url(url: str) -> str:
    """``url`` with its secrets masked by the Apprise plugin that owns it.

    A URL Apprise does not understand shows its scheme only (``bogus://…``):
    nothing of an unparsed URL can be known to be safe.
    """
    import apprise  # loaded on first use: the CLI's other commands do not need it

    scheme = url.partition("://")[0] if "://" in url else ""
    try:
        plugin = apprise.Apprise.instantiate(url.strip())
        rendered = plugin.url(privacy=True) if plugin is not None else None  # type: ignore[no-untyped-call]
    except Exception:  # a plugin's parser failing on odd input must not break a page
        rendered = None
    if not rendered:
        return f"{_safe_scheme(scheme)}://{_UNKNOWN}" if scheme else _UNKNOWN
    return str(rendered).split("?", 1)[0]


def private_urls(urls: list[str]) -> list[str]:
    """:func:`private_url` of each."""
    return [private_url(u) for u in urls]


def _safe_scheme(scheme: str) -> str:
    """The scheme when it looks like one (letters, digits, + - .), else nothing of it."""
    ok = scheme.isascii() and scheme[:1].isalpha() and all(
        c.isalnum() or c in "+-." for c in scheme) and len(scheme) <= 32
    return scheme if ok else ""
