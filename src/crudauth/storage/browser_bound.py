"""Browser-bound single-use records in the token store (MFA challenges, OAuth state).

A feature mints a random token (``new_secret``) and stores a record under ``<prefix><keyed hash
of the token>`` with a lifetime: the store never holds the token itself. To bind the record to
one browser, the feature mints a second secret, keeps its keyed hash (``binding``) in the record
and sets the secret as an HttpOnly cookie; ``bound`` checks a presented secret against it in
constant time. ``take`` consumes the record with the store's atomic ``get_and_delete``: of any
number of callers presenting one token, on any number of workers, exactly one gets it.

Whatever a client presents as a token or a secret is checked against ``TOKEN_SHAPE`` before it
is hashed. What a record holds, its lifetime, the cookie's name and the answer to a refusal are
each feature's own.
"""

from __future__ import annotations

import secrets
from typing import Final

from crudauth.keys import KeyRing, TokenShape
from crudauth.storage.base import KeyValueStore

#: ``new_secret``'s 43 characters, with room; anything much longer is not ours.
TOKEN_SHAPE: Final = TokenShape(min_length=32, max_length=128)


def new_secret() -> str:
    """256 random bits, URL-safe: a token or a browser secret."""
    return secrets.token_urlsafe(32)


class BrowserBoundRecords:
    """Records in ``store`` under ``prefix`` and the keyed hash of their token.

    ``token_purpose`` and ``binding_purpose`` are the key-ring purposes of the token's and the
    browser secret's hashes. With ``rotation``, ``take`` looks a token up under every secret of
    the key ring, newest first, so a record stored before a secret rotation can still be taken.
    """

    def __init__(
        self,
        store: KeyValueStore,
        keys: KeyRing,
        *,
        prefix: str,
        token_purpose: str,
        binding_purpose: str,
        rotation: bool = False,
    ) -> None:
        self.store = store
        self.keys = keys
        self.prefix = prefix
        self.token_purpose = token_purpose
        self.binding_purpose = binding_purpose
        self.rotation = rotation

    def key(self, token: object) -> str | None:
        """The store key of ``token``'s record under the newest secret; ``None`` for a value
        that cannot be a token."""
        if not TOKEN_SHAPE.check(token):
            return None
        return self.prefix + self.keys.digest(self.token_purpose, token)

    def binding(self, secret: str) -> str:
        """The keyed hash a record keeps of its browser's secret."""
        return self.keys.digest(self.binding_purpose, secret)

    def bound(self, binding: str, presented: str | None) -> bool:
        """True if ``presented`` (the browser's cookie) is the secret ``binding`` hashes."""
        if not TOKEN_SHAPE.check(presented):
            return False
        return self.keys.matches(self.binding_purpose, presented, binding)

    async def put(self, token: str, record: str, ttl: float) -> None:
        """Store ``record`` for ``ttl`` seconds under the hash of ``token`` (one we minted)."""
        key = self.key(token)
        assert key is not None  # a token from new_secret
        await self.store.set(key, record, ttl)

    async def take(self, token: object) -> str | None:
        """The record of ``token``, removed; ``None`` for every caller but one."""
        if not TOKEN_SHAPE.check(token):
            return None
        for index in range(self.keys.size if self.rotation else 1):
            key = self.prefix + self.keys.digest(self.token_purpose, token, index)
            raw = await self.store.get_and_delete(key)
            if raw is not None:
                return raw
        return None
