"""Configuration from the environment (``GOODCRY_*``), with embedded defaults."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _secret_key(instance_path: Path) -> str:
    """The configured secret, or one kept in the instance folder for local use."""
    configured = os.environ.get("GOODCRY_SECRET_KEY")
    if configured:
        return configured
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def from_environment(instance_path: Path) -> dict:
    env = os.environ.get
    return {
        "SECRET_KEY": _secret_key(instance_path),
        "DATABASE_URL": env("GOODCRY_DATABASE_URL")
        or f"sqlite:///{instance_path / 'goodcry.sqlite'}",
        "SPOTIFY_CLIENT_ID": env("GOODCRY_SPOTIFY_CLIENT_ID", ""),
        "SPOTIFY_REDIRECT_URI": env("GOODCRY_SPOTIFY_REDIRECT_URI",
                                    "http://127.0.0.1:8000/spotify/callback"),
        "SPOTIFY_API_URL": env("GOODCRY_SPOTIFY_API_URL", "https://api.spotify.com/v1/"),
        "SPOTIFY_ACCOUNTS_URL": env("GOODCRY_SPOTIFY_ACCOUNTS_URL",
                                    "https://accounts.spotify.com/"),
        "LASTFM_API_KEY": env("GOODCRY_LASTFM_API_KEY", ""),
        "LASTFM_API_URL": env("GOODCRY_LASTFM_API_URL", "https://ws.audioscrobbler.com/2.0/"),
        "RATE_LIMITS": env("GOODCRY_RATE_LIMITS", "on").lower() != "off",
    }
