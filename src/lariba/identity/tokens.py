"""Signed tokens: EdDSA (Ed25519) JWTs with a ``kid``, verified against the published JWKS.

Access, refresh and console-session tokens differ in their ``typ`` header, their
``token_use`` claim and their audience, so none verifies as another.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.errors import NotFound, Unauthorized
from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.identity.models import SigningKey

ALGORITHM = "EdDSA"
TokenUse = Literal["access", "refresh", "console"]
_TYP = {"access": "at+jwt", "refresh": "rt+jwt", "console": "cs+jwt"}
_KEY_PURPOSE = "signing-key"
_ROTATION_LOCK_ID = 7_240_412
# How often a process looks again for keys another process rotated in.
_RELOAD_INTERVAL_SECONDS = 60.0
_UNKNOWN_KID_RELOAD_INTERVAL_SECONDS = 5.0
_VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: uuid.UUID
    expires_in: int


def _public_jwk(kid: str, public: Ed25519PublicKey) -> dict[str, Any]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwt.utils.base64url_encode(raw).decode(),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


async def create_signing_key(session: AsyncSession, *, box: SecretBox) -> SigningKey:
    """Makes a new key the signing key; the previous one keeps verifying until retired."""
    # Serialises rotations, so two replicas bootstrapping at once leave one active key.
    await session.execute(select(func.pg_advisory_xact_lock(_ROTATION_LOCK_ID)))
    private = Ed25519PrivateKey.generate()
    kid = datetime.now(UTC).strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    await session.execute(
        update(SigningKey).where(SigningKey.status == "active").values(status="verify_only")
    )
    key = SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        private_key_encrypted=box.encrypt(pem, purpose=_KEY_PURPOSE),
        public_jwk=_public_jwk(kid, private.public_key()),
        status="active",
    )
    session.add(key)
    await session.flush()
    return key


async def ensure_signing_key(session: AsyncSession, *, box: SecretBox) -> None:
    active = await session.scalar(select(SigningKey.kid).where(SigningKey.status == "active"))
    if active is None:
        await create_signing_key(session, box=box)


async def retire_signing_key(session: AsyncSession, kid: str) -> SigningKey:
    """Stops a key from verifying. The active key cannot be retired: rotate first."""
    key = await session.get(SigningKey, kid, with_for_update=True)
    if key is None:
        raise NotFound(f"no signing key {kid}")
    if key.status == "active":
        raise ValueError("the active signing key cannot be retired; rotate first")
    key.status = "retired"
    key.retired_at = datetime.now(UTC)
    await session.flush()
    return key


async def published_keys(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(SigningKey.public_jwk)
        .where(SigningKey.status.in_(("active", "verify_only")))
        .order_by(SigningKey.created_at.desc())
    )
    return list(rows)


class KeyRing:
    """The process's view of the signing keys: the active private key and the public keys
    that verify. Reloaded from the database periodically and when a token names a key
    this process has not seen (another replica rotated)."""

    def __init__(
        self,
        *,
        settings: Settings,
        box: SecretBox,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self._settings = settings
        self._box = box
        self._sessionmaker = sessionmaker
        self._signing: tuple[str, Ed25519PrivateKey] | None = None
        self._verifying: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = 0.0
        # Tokens already verified, until they expire. A client sends the same access
        # token on every call for its lifetime; checking the signature once is enough.
        # Emptied whenever the keys are reloaded, so a retired key takes effect.
        self._verified: OrderedDict[tuple[TokenUse, str], TokenClaims] = OrderedDict()

    async def load(self) -> None:
        async with self._sessionmaker() as session:
            keys = (
                await session.scalars(
                    select(SigningKey).where(SigningKey.status.in_(("active", "verify_only")))
                )
            ).all()
        verifying: dict[str, Ed25519PublicKey] = {}
        signing = None
        for key in keys:
            jwk = jwt.PyJWK(key.public_jwk, algorithm=ALGORITHM)
            assert isinstance(jwk.key, Ed25519PublicKey)
            verifying[key.kid] = jwk.key
            if key.status == "active":
                pem = self._box.decrypt(key.private_key_encrypted, purpose=_KEY_PURPOSE)
                private = serialization.load_pem_private_key(pem, password=None)
                assert isinstance(private, Ed25519PrivateKey)
                signing = (key.kid, private)
        self._verifying = verifying
        self._signing = signing
        self._loaded_at = time.monotonic()
        self._verified.clear()

    async def _fresh(self, *, within: float) -> None:
        if time.monotonic() - self._loaded_at > within:
            await self.load()

    async def issue(
        self,
        *,
        use: TokenUse,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        token_id: uuid.UUID | None = None,
        ttl_seconds: int,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        await self._fresh(within=_RELOAD_INTERVAL_SECONDS)
        if self._signing is None:
            raise RuntimeError("no active signing key; run `lariba keys rotate`")
        kid, private = self._signing
        now = int(time.time())
        token_id = token_id or uuid.uuid4()
        claims: dict[str, Any] = {
            "iss": self._settings.jwt_issuer,
            "aud": self._audience(use),
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": str(token_id),
            "token_use": use,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            **(extra or {}),
        }
        token = jwt.encode(
            claims, private, algorithm=ALGORITHM, headers={"kid": kid, "typ": _TYP[use]}
        )
        return IssuedToken(token=token, token_id=token_id, expires_in=ttl_seconds)

    def _audience(self, use: TokenUse) -> str:
        aud = self._settings.jwt_audience
        return aud if use == "access" else f"{aud}:{use}"

    async def verify(self, token: str, *, use: TokenUse) -> TokenClaims:
        """Returns the claims of a valid token of the expected use, else raises 401."""
        # Picks up keys rotated or retired by another process within a minute.
        await self._fresh(within=_RELOAD_INTERVAL_SECONDS)
        cached = self._verified.get((use, token))
        if cached is not None:
            if cached.expires_at > datetime.now(UTC):
                return cached
            del self._verified[(use, token)]
        claims = await self._verify_signed(token, use=use)
        self._verified[(use, token)] = claims
        while len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def _verify_signed(self, token: str, *, use: TokenUse) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise Unauthorized("The token is malformed.", code="invalid_token") from exc
        if header.get("alg") != ALGORITHM or header.get("typ") != _TYP[use]:
            raise Unauthorized(f"Not an {use} token.", code="invalid_token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("The token names no key.", code="invalid_token")
        key = self._verifying.get(kid)
        if key is None:
            await self._fresh(within=_UNKNOWN_KID_RELOAD_INTERVAL_SECONDS)
            key = self._verifying.get(kid)
        if key is None:
            raise Unauthorized("The token was signed by an unknown key.", code="invalid_token")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience(use),
                issuer=self._settings.jwt_issuer,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is not valid.", code="invalid_token") from exc
        if claims.get("token_use") != use:
            raise Unauthorized(f"Not an {use} token.", code="invalid_token")
        try:
            return TokenClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                token_id=uuid.UUID(claims["jti"]),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (ValueError, TypeError) as exc:
            raise Unauthorized("The token is not valid.", code="invalid_token") from exc
