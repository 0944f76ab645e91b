"""The values OAuth sign-in passes around: credentials, a provider's profile, the state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crudauth.errors import OAuthFailure as OAuthFailure  # lives with the domain errors

#: The error codes of the callback (the reference's, then crudauth's own).
OAUTH_FAILED = "oauth_failed"
INVALID_STATE = "invalid_state"
EMAIL_MISSING = "email_missing"
EMAIL_UNVERIFIED = "email_unverified"
EMAIL_TOO_LONG = "email_too_long"
PROVIDER_ALREADY_LINKED = "provider_already_linked"
ACCOUNT_INACTIVE = "account_inactive"
#: An account with this verified address exists: its owner must confirm the link (a mail was
#: sent) or link while signed in. Never a silent takeover.
LINK_CONFIRMATION_REQUIRED = "link_confirmation_required"
#: Unlinking would leave the account with no way to sign in.
LAST_SIGN_IN_METHOD = "last_sign_in_method"


@dataclass(frozen=True)
class OAuthCredentials:
    """A registered client at one provider. ``issuer`` selects OpenID Connect (discovery and
    ID-token validation); an empty ``client_secret`` is a public PKCE client."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    scopes: Sequence[str] | None = None
    issuer: str | None = None
    #: Keep the provider's tokens after sign-in, encrypted with the key ring (off by default).
    store_tokens: bool = False


@dataclass(frozen=True)
class OAuthUserInfo:
    """Who the provider says signed in. ``provider_id`` is the stable subject (an ID token's
    ``sub``); ``email_verified`` is true only when the provider vouches for the address."""

    provider: str
    provider_id: str
    email: str | None = None
    email_verified: bool = False
    username: str | None = None
    name: str | None = None
    given_name: str | None = None
    picture: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class OAuthState:
    """The server-side record of one authorization request (stored under a hash of the state
    value, for ten minutes, consumed once)."""

    provider: str
    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)
    #: Keyed hash of the browser secret held in this browser's HttpOnly state cookie.
    browser: str = field(repr=False)
    redirect_to: str | None = None
    created_at: float = 0.0
    #: Set when a signed-in user asked to link this provider to their account.
    link_user_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthState:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class TokenSet:
    """The provider's token response, as far as sign-in needs it."""

    access_token: str = field(repr=False)
    id_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
