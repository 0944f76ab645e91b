"""Provider tokens at rest: AES-256-GCM under the key ring's ``oauth-tokens`` key.

Only with ``OAuthCredentials(store_tokens=True)``. The newest secret encrypts; every secret of
the ring decrypts, so rotating ``SECRET_KEY`` keeps stored tokens readable.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

from crudauth.errors import ConfigurationError
from crudauth.keys import KeyRing, Purpose

_AAD: Final = b"crudauth/oauth-tokens/v1"


class TokenCipher:
    def __init__(self, keys: KeyRing) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("store_tokens=True needs the cryptography package ") from None
        self._aead = AESGCM
        self.keys = keys

    def encrypt(self, tokens: Mapping[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead(self.keys.key(Purpose.OAUTH_TOKENS)).encrypt(
            nonce, json.dumps(dict(tokens)).encode(), _AAD
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"v1.{self.keys.kid(Purpose.OAUTH_TOKENS)}.{payload}"

    def decrypt(self, value: str) -> dict[str, Any]:
        version, kid, payload = value.split(".", 2)
        if version != "v1":
            raise ValueError("unknown token encryption version")
        raw = base64.urlsafe_b64decode(payload)
        for index in range(self.keys.size):
            if self.keys.kid(Purpose.OAUTH_TOKENS, index) == kid:
                key = self.keys.key(Purpose.OAUTH_TOKENS, index)
                opened = self._aead(key).decrypt(raw[:12], raw[12:], _AAD)
                data: dict[str, Any] = json.loads(opened)
                return data
        raise ValueError("no key of the ring encrypted these tokens")
