"""``OAuthProviderFactory``: provider classes by name."""

from __future__ import annotations

from typing import Any, ClassVar

from crudauth.errors import ConfigurationError
from crudauth.oauth.providers.base import AbstractOAuthProvider
from crudauth.oauth.types import OAuthCredentials


class OAuthProviderFactory:
    """Builds a provider from its name and credentials: a registered class, else OpenID
    Connect when the credentials name an ``issuer``."""

    _providers: ClassVar[dict[str, type[AbstractOAuthProvider]]] = {}

    @classmethod
    def register_provider(cls, name: str, provider: type[AbstractOAuthProvider]) -> None:
        if not (isinstance(provider, type) and issubclass(provider, AbstractOAuthProvider)):
            raise TypeError("register_provider needs an AbstractOAuthProvider subclass")
        cls._providers[name] = provider

    @classmethod
    def get(cls, name: str) -> type[AbstractOAuthProvider] | None:
        return cls._providers.get(name)

    @classmethod
    def providers(cls) -> list[str]:
        return sorted(cls._providers)

    @classmethod
    def create(
        cls, name: str, credentials: OAuthCredentials, **options: Any
    ) -> AbstractOAuthProvider:
        from crudauth.oauth.providers.oidc import GenericOIDCProvider

        registered = cls._providers.get(name)
        if registered is not None:
            return registered(credentials, name=name, **options)
        if credentials.issuer:
            return GenericOIDCProvider(credentials, name=name, **options)
        raise ConfigurationError(
            f"unknown OAuth provider {name!r}: register it with "
            "OAuthProviderFactory.register_provider or give OAuthCredentials(issuer=...)"
        )
