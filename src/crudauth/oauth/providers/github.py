"""``GitHubOAuthProvider``: GitHub's OAuth apps (plain OAuth 2.0, no ID token).

The email is the *primary and verified* address from ``/user/emails``; any other address is
reported unverified and never matches an existing account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import httpx

from crudauth.oauth.providers.base import DEFAULT_TIMEOUT, AbstractOAuthProvider, text_claim
from crudauth.oauth.types import OAUTH_FAILED, OAuthCredentials, OAuthFailure, OAuthUserInfo


class GitHubOAuthProvider(AbstractOAuthProvider):
    """GitHub sign-in. Every URL can be overridden (a GitHub Enterprise host, a test stub)."""

    name: ClassVar[str] = "github"
    authorize_url = "https://github.com/login/oauth/authorize"
    token_url = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    api_base_url = "https://api.github.com"
    default_scopes: ClassVar[tuple[str, ...]] = ("read:user", "user:email")
    requires_secret: ClassVar[bool] = True

    def __init__(
        self,
        credentials: OAuthCredentials,
        *,
        name: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        api_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            credentials,
            name=name,
            authorize_url=authorize_url,
            token_url=token_url,
            timeout=timeout,
            transport=transport,
        )
        self.api_base_url = (api_base_url or self.api_base_url).rstrip("/")

    async def get_user_info(self, access_token: str) -> OAuthUserInfo:
        headers = {"Accept": "application/vnd.github+json"}
        user = await self.fetch_profile(f"{self.api_base_url}/user", access_token, headers=headers)
        if not isinstance(user.get("id"), (int, str)):
            raise OAuthFailure(OAUTH_FAILED, "github: /user without an id")
        emails = await self.request_json(
            "GET", f"{self.api_base_url}/user/emails", token=access_token, headers=headers
        )
        if not isinstance(emails, list):
            raise OAuthFailure(OAUTH_FAILED, "github: /user/emails is not a list")
        email, verified = primary_email(emails)
        return OAuthUserInfo(
            provider=self.provider_name,
            provider_id=str(user["id"]),
            email=email or text_claim(user, "email"),
            email_verified=verified,
            username=text_claim(user, "login"),
            name=text_claim(user, "name"),
            picture=text_claim(user, "avatar_url"),
            raw=dict(user),
        )


def primary_email(emails: list[object]) -> tuple[str | None, bool]:
    """The primary address and whether GitHub verified it (only that one ever counts)."""
    for entry in emails:
        if isinstance(entry, Mapping) and entry.get("primary") is True:
            address = text_claim(entry, "email")
            return address, address is not None and entry.get("verified") is True
    return None, False
