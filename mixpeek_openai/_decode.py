"""Decoding JSON that someone else wrote: the model's arguments and the server's bodies.

Both sides can send anything, so neither is handed to ``json.loads`` as is:

* **Nesting.** The model's arguments are checked for depth before decoding (they are
  small, and a cheap count of brackets almost always proves they are shallow). For
  response bodies the C decoder's own recursion guard is the bound: anything deeper raises
  ``RecursionError``, which becomes :class:`BadJSON` here, not a crash later.
* **Numbers.** Integers longer than :data:`MAX_INT_DIGITS` digits are refused while
  decoding (a 400-digit score cannot be rounded, a 5,000-digit total cannot even be
  converted); ``NaN`` and ``Infinity`` literals are refused (they are not JSON), and so
  are floats that overflow (``1e999``) in the model's arguments.
* **Text.** Bytes must be UTF-8; ``\\ud800``-style escapes that decode to lone surrogates
  (which cannot be encoded again) are replaced with U+FFFD.

Every failure is a :class:`BadJSON` whose message says what was wrong, in words fit for
the model (arguments) or for the caller (bodies).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_ARGUMENT_DEPTH", "MAX_INT_DIGITS", "BadJSON", "decode_arguments", "decode_body"]

MAX_ARGUMENT_DEPTH = 32
"""Deepest nesting accepted in the model's arguments."""

MAX_INT_DIGITS = 20
"""Longest integer (in digits) accepted from either side."""


class BadJSON(ValueError):
    """The text is not JSON we accept; ``str()`` says why."""


def _bounded_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise BadJSON(f"a number has {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _no_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:
        raise BadJSON(f"the number {text[:20]}... is out of range")
    return value


def _loads(text: str, *, check_floats: bool = False, check_ints: bool = True) -> Any:
    try:
        value = json.loads(
            text,
            parse_int=_bounded_int if check_ints else None,
            parse_constant=_no_constant,
            parse_float=_finite_float if check_floats else None,
        )
        if ("\\ud" in text or "\\uD" in text) and _has_surrogates(value):
            value = _replace_surrogates(value)
    except BadJSON:
        raise
    except RecursionError:
        raise BadJSON("it is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadJSON(
            f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:  # e.g. int conversion limits
        raise BadJSON(f"it could not be decoded ({str(exc)[:80]})") from None
    return value


def decode_arguments(text: str, *, max_bytes: int) -> Any:
    """The model's arguments text as a JSON value (empty text is ``{}``).

    Raises:
        BadJSON: too large, too deep, not JSON, or numbers out of range.
    """
    if len(text) > max_bytes // 4 and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise BadJSON(f"the arguments are {size} bytes; the limit is {max_bytes}")
    if not text.isascii():
        text = _clean_text(text)
    if not text.strip():
        return {}
    if text.count("[") + text.count("{") > MAX_ARGUMENT_DEPTH:
        depth = _depth(text)
        if depth > MAX_ARGUMENT_DEPTH:
            raise BadJSON(
                f"the arguments are nested {depth} levels deep; at most "
                f"{MAX_ARGUMENT_DEPTH} are accepted"
            )
    # Arguments are small, so every float is checked too (a body's are, where it matters,
    # by the dispatcher's contract check: checking each float would double decoding time).
    return _loads(text, check_floats=True)


def decode_body(body: bytes) -> Any:
    """A response body as a JSON value.

    Raises:
        BadJSON: not UTF-8, not JSON, too deep, or numbers out of range.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJSON(f"it is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadJSON("it is empty")
    # Checking every integer in Python costs more than decoding the rest of a body; a
    # body with no run of more than MAX_INT_DIGITS digits anywhere cannot hold a long
    # integer, and finding such a run is a C-speed scan of a translated copy.
    return _loads(text, check_ints=_LONG_DIGIT_RUN in body.translate(_DIGITS_AS_ZERO))


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * (MAX_INT_DIGITS + 1)


# -- helpers ----------------------------------------------------------------------------


def _clean_text(text: str) -> str:
    """``text`` with lone surrogate characters replaced (they cannot be encoded)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _depth(text: str) -> int:
    """Deepest bracket nesting of ``text``, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in "]}":
            depth -= 1
    return deepest


def _has_surrogates(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _clean_text(item) != item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value
