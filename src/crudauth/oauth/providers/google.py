"""``GoogleOAuthProvider``: Google through its OpenID Connect metadata."""

from __future__ import annotations

from typing import ClassVar

from crudauth.oauth.providers.oidc import GenericOIDCProvider


class GoogleOAuthProvider(GenericOIDCProvider):
    """Google sign-in. ``issuer=`` points it elsewhere (a test provider on loopback)."""

    name: ClassVar[str] = "google"
    default_issuer: ClassVar[str | None] = "https://accounts.google.com"
    default_scopes: ClassVar[tuple[str, ...]] = ("openid", "email", "profile")
    requires_secret: ClassVar[bool] = True
