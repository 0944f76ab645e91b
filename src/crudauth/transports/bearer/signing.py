"""Key material for bearer JWTs: which key signs, which keys verify, and the public JWKS.

HS256 keys come from the key ring, one derived key per purpose and per secret, so rotating
``SECRET_KEY`` (the old value moved to ``secret_fallbacks``) keeps every live token valid. The
asymmetric options (EdDSA over Ed25519, ES256 over P-256) take a private key from the
application and publish the public halves as a JWKS for other verifiers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crudauth.errors import ConfigurationError
from crudauth.keys import KeyRing

Algorithm = Literal["HS256", "EdDSA", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("HS256", "EdDSA", "ES256")


@dataclass(frozen=True)
class JWTKey:
    """One key: its public id, its algorithm, and the material that signs and verifies."""

    kid: str
    algorithm: Algorithm
    verifying: Any
    signing: Any = field(default=None, repr=False)
    public_jwk: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        return f"JWTKey(kid={self.kid!r}, algorithm={self.algorithm!r})"


@dataclass(frozen=True)
class KeySet:
    """The key that signs new tokens, and every key (by ``kid``) that verifies old ones."""

    signer: JWTKey
    verifiers: Mapping[str, JWTKey]

    @property
    def algorithm(self) -> Algorithm:
        return self.signer.algorithm

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JSON Web Key Set (empty for HMAC keys, which are secret)."""
        keys = [
            {**key.public_jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"}
            for key in self.verifiers.values()
            if key.public_jwk is not None
        ]
        return {"keys": keys}


def hmac_keyset(ring: KeyRing, purpose: str) -> KeySet:
    """HS256 keys for ``purpose``: the current secret signs, every secret verifies."""
    keys = [
        JWTKey(ring.kid(purpose, i), "HS256", ring.key(purpose, i), ring.key(purpose, i))
        for i in range(ring.size)
    ]
    return KeySet(keys[0], {key.kid: key for key in reversed(keys)})


def asymmetric_keyset(
    algorithm: Algorithm, signing_key: Any, verification_keys: Sequence[Any] = ()
) -> KeySet:
    """An EdDSA or ES256 key set: ``signing_key`` signs; it and ``verification_keys`` (the
    public halves of earlier signing keys, kept during a rotation) verify."""
    private = _load_private(signing_key, algorithm)
    signer = _public_entry(algorithm, private.public_key(), private)
    verifiers = {signer.kid: signer}
    for value in verification_keys:
        entry = _public_entry(algorithm, _load_public(value, algorithm))
        verifiers.setdefault(entry.kid, entry)
    return KeySet(signer, verifiers)


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "asymmetric bearer keys need the 'cryptography' package: "
            "pip install 'crudauth[jwt-keys]'"
        ) from None
    return serialization


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else bytes(value)


def _load_private(value: Any, algorithm: Algorithm) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            value = _crypto().load_pem_private_key(_as_bytes(value), password=None)
        except ValueError as exc:
            raise ConfigurationError(f"signing_key is not a PEM private key: {exc}") from None
    _check_type(value, algorithm, private=True)
    return value


def _load_public(value: Any, algorithm: Algorithm) -> Any:
    if isinstance(value, (str, bytes)):
        serialization = _crypto()
        raw = _as_bytes(value)
        try:
            value = (
                serialization.load_pem_private_key(raw, password=None)
                if b"PRIVATE KEY" in raw
                else serialization.load_pem_public_key(raw)
            )
        except ValueError as exc:
            raise ConfigurationError(f"verification key is not a PEM key: {exc}") from None
    if hasattr(value, "private_bytes"):
        value = value.public_key()
    _check_type(value, algorithm, private=False)
    return value


def _check_type(key: Any, algorithm: Algorithm, *, private: bool) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    kind = "private" if private else "public"
    if algorithm == "EdDSA":
        wanted: tuple[type, ...] = (
            (ed25519.Ed25519PrivateKey,) if private else (ed25519.Ed25519PublicKey,)
        )
        if not isinstance(key, wanted):
            raise ConfigurationError(f"algorithm='EdDSA' needs an Ed25519 {kind} key")
        return
    wanted = (ec.EllipticCurvePrivateKey,) if private else (ec.EllipticCurvePublicKey,)
    if not isinstance(key, wanted) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigurationError(f"algorithm='ES256' needs a P-256 {kind} key")


def _public_entry(algorithm: Algorithm, public: Any, private: Any = None) -> JWTKey:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm

    exporter: Any = OKPAlgorithm if algorithm == "EdDSA" else ECAlgorithm
    jwk = {k: str(v) for k, v in exporter.to_jwk(public, as_dict=True).items()}
    return JWTKey(thumbprint(jwk), algorithm, public, private, jwk)


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 thumbprint of a public JWK: a ``kid`` anyone can recompute."""
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
