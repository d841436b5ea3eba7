"""Keep credentials out of everything the CPI writes.

Two layers: the exact secret values this call knows about (passwords,
application-credential secrets, NATS URLs, agent env passwords and keys) are
replaced wherever they appear, and patterns catch secrets we were not told
about (tokens in headers, "password" fields in JSON bodies, URL userinfo,
PEM private keys).
"""

from __future__ import annotations

import json
import re

MASK = "<redacted>"

_PATTERNS = (
    (re.compile(r"(?i)(x-(?:auth|subject)-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",]+"), r"\1" + MASK),
    (
        re.compile(
            r"(?i)([\"'](?:password|api_key|secret|application_credential_secret|private_key"
            r"|user_data|token|adminPass)[\"']\s*:\s*)\"(?:[^\"\\]|\\.)*\""
        ),
        r'\1"' + MASK + '"',
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s\"']*:)[^@/\s\"']+@"), r"\1" + MASK + "@"),
    (
        re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
        "<redacted private key>",
    ),
)

# Shorter values would mask ordinary words in the log; such secrets are weak anyway.
_MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()


def register_secret(value: object) -> None:
    """Mask `value` (and its JSON-escaped form) in all later output of this process."""
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LENGTH:
        return
    _secrets.add(value)
    escaped = json.dumps(value)[1:-1]
    if escaped != value:
        _secrets.add(escaped)


def register_secrets_in(value: object, keys: frozenset[str]) -> None:
    """Register every string found under one of `keys`, at any depth of a JSON-like value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys:
                _register_all_strings(item)
            else:
                register_secrets_in(item, keys)
    elif isinstance(value, list):
        for item in value:
            register_secrets_in(item, keys)


def _register_all_strings(value: object) -> None:
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, dict):
        for item in value.values():
            _register_all_strings(item)
    elif isinstance(value, list):
        for item in value:
            _register_all_strings(item)


def redact(text: str) -> str:
    # longest first, so a secret that contains another is masked whole
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def forget_secrets() -> None:
    """For tests that run several calls in one process."""
    _secrets.clear()
