"""Secrets out of text: API keys, bearer tokens and URL passwords become ``***``.

Provider errors, database errors and reports can quote a request, a header or a URL. Every
message pytest-mipro shows or writes about them goes through :func:`redact` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "***"

# Environment variables whose values are secrets: OPENAI_API_KEY, AZURE_API_KEY, HF_TOKEN, ...
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS)$", re.IGNORECASE)
_PATTERNS = (
    # scheme://user:PASSWORD@host -> scheme://user:***@host
    (re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?P<tail>@)"), r"\g<head>" + MASK + r"\g<tail>"),
    # Authorization: Bearer xyz / api-key: xyz / 'x-api-key': 'xyz', in headers, dicts or prose
    (
        re.compile(r"(?P<head>(authorization|api[-_]?key)['\"]?\s*[:=]\s*['\"]?(bearer\s+)?)[^\s'\",}]{6,}", re.IGNORECASE),
        r"\g<head>" + MASK,
    ),
    (re.compile(r"(?P<head>\bbearer\s+)[^\s'\",}]{6,}", re.IGNORECASE), r"\g<head>" + MASK),
    # OpenAI / Anthropic style keys anywhere: sk-..., sk-ant-...
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), MASK),
)
_MIN_SECRET = 6  # shorter environment values ("1", "true") are not worth masking


def secret_values(extra: Iterable[object] = ()) -> list[str]:
    """Secret-looking environment values plus ``extra`` (e.g. an LM's ``api_key``), longest first."""
    found = {value for name, value in os.environ.items() if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET}
    found.update(str(value) for value in extra if value and len(str(value)) >= _MIN_SECRET)
    return sorted(found, key=len, reverse=True)


def redact(text: str, extra: Iterable[object] = ()) -> str:
    """``text`` without known secret values, bearer tokens, API keys or URL passwords."""
    for value in secret_values(extra):
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
