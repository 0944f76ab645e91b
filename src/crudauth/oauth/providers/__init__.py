"""Built-in providers; importing this package registers ``"google"`` and ``"github"``."""

from crudauth.oauth.providers.github import GitHubOAuthProvider
from crudauth.oauth.providers.google import GoogleOAuthProvider
from crudauth.oauth.registry import OAuthProviderFactory

OAuthProviderFactory.register_provider("google", GoogleOAuthProvider)
OAuthProviderFactory.register_provider("github", GitHubOAuthProvider)

__all__ = ["GitHubOAuthProvider", "GoogleOAuthProvider"]
