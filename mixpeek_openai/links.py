"""Which links the model sees: a URL is shown whole or not at all.

A URL cut to fit a length limit is a dead link that still costs tokens, and a model may
"repair" it into a plausible wrong one. So a URL value is kept whole or left out, never
shortened. Presigned URLs (an S3, GCS, Azure or CloudFront link whose query string carries a
signature, credential or token) are left out of the model's view by default: their
signature alone is ~250 characters of random text (a third of an output's tokens), they
expire within the hour, and they grant access to whoever holds them. They stay on
``ToolCallResult.raw`` for the caller, and can go to the model as image parts, which the
API fetches (see :func:`mixpeek_openai.results.search_images`). Short links a model may cite
(a video page, a CDN file) are kept.
"""

from __future__ import annotations

import re

__all__ = ["SIGNED_QUERY_KEYS", "find_urls", "is_signed", "is_url", "keep_url", "strip_signed"]

SIGNED_QUERY_KEYS = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "googleaccessid",
        "x-oss-signature",
        "ossaccesskeyid",
        "signature",
        "sig",
        "key-pair-id",
        "policy",
        "token",
        "access_token",
        "sas",
    }
)
"""Query parameters (lower case) that mark a URL as presigned: it carries a credential."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s\"'<>\\]+")


def is_url(value: str) -> bool:
    """Whether ``value`` is one URL (``scheme://...`` with no whitespace)."""
    if value.startswith(("https://", "http://")):
        return not any(c.isspace() for c in value)
    return _SCHEME.match(value) is not None and not any(c.isspace() for c in value)


def is_signed(url: str) -> bool:
    """Whether ``url``'s query string carries a signature, credential or token."""
    query_at = url.find("?")
    if query_at < 0:
        return False
    query = url[query_at + 1 :].split("#", 1)[0]
    for pair in query.split("&"):
        key = pair.split("=", 1)[0].lower()
        if key in SIGNED_QUERY_KEYS:
            return True
    return False


def keep_url(url: str, *, keep_signed: bool, max_chars: int) -> bool:
    """Whether the URL value ``url`` goes to the model (whole): not presigned (unless
    ``keep_signed``) and at most ``max_chars`` long."""
    return len(url) <= max_chars and (keep_signed or not is_signed(url))


def strip_signed(text: str) -> str:
    """``text`` with presigned URLs inside it replaced by ``[signed link]``."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(
        lambda m: "[signed link]" if is_signed(m.group(0)) else m.group(0), text
    )


def find_urls(text: str) -> list[str]:
    """The URLs written in ``text`` (for checks that no output holds a cut one)."""
    return _URL_IN_TEXT.findall(text)
