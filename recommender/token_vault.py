"""Secrets at rest: OAuth tokens and PKCE verifiers sealed with a key derived from the app's
secret key (HKDF-SHA256 into a Fernet key).

Changing the secret key makes every sealed value unreadable; callers treat that as "connect
again", never as a crash.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"goodcry token vault"
_INFO = b"goodcry/spotify-tokens/v1"


class SealBroken(Exception):
    """A sealed value could not be opened (tampered with, or sealed under another key)."""


class TokenVault:
    """Seals and opens short secrets; the key never leaves the object."""

    def __init__(self, secret_key: str | bytes):
        if not secret_key:
            raise ValueError("a token vault needs a non-empty secret key")
        material = secret_key.encode() if isinstance(secret_key, str) else secret_key
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return "TokenVault(...)"

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, UnicodeError):
            raise SealBroken("the sealed value cannot be opened with this key") from None
