"""Sign in with Google, GitHub and any OpenID Connect provider.

``CRUDAuth(oauth={"google": OAuthCredentials(...), ...}, redirect_base_url=...)`` mounts the
routes; see docs/oauth.md. The provider classes need the ``oauth`` extra (Authlib, httpx);
they are imported on first use, so ``OAuthCredentials`` and ``OAuthAccountService`` import
without it.
"""

from typing import TYPE_CHECKING, Any

from crudauth.oauth.identities import identities_metadata, identities_table
from crudauth.oauth.service import OAuthAccountService
from crudauth.oauth.types import OAuthCredentials, OAuthFailure, OAuthState, OAuthUserInfo

if TYPE_CHECKING:
    from crudauth.oauth.flow import OAuthPaths
    from crudauth.oauth.providers import GitHubOAuthProvider, GoogleOAuthProvider
    from crudauth.oauth.providers.base import AbstractOAuthProvider
    from crudauth.oauth.providers.oidc import GenericOIDCProvider
    from crudauth.oauth.registry import OAuthProviderFactory

_LAZY = {
    "AbstractOAuthProvider": "crudauth.oauth.providers.base",
    "GenericOIDCProvider": "crudauth.oauth.providers.oidc",
    "GitHubOAuthProvider": "crudauth.oauth.providers",
    "GoogleOAuthProvider": "crudauth.oauth.providers",
    "OAuthProviderFactory": "crudauth.oauth.providers",
    "OAuthPaths": "crudauth.oauth.flow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crudauth.oauth' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AbstractOAuthProvider",
    "GenericOIDCProvider",
    "GitHubOAuthProvider",
    "GoogleOAuthProvider",
    "OAuthAccountService",
    "OAuthCredentials",
    "OAuthFailure",
    "OAuthPaths",
    "OAuthProviderFactory",
    "OAuthState",
    "OAuthUserInfo",
    "identities_metadata",
    "identities_table",
]
