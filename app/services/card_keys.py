"""The Ed25519 keys that sign card credentials: generation, rotation, retirement.

Keys live in one JSON file (``keys.json``, mode 0600) in ``CARD_KEYS_DIR``
(default ``instance/card_keys``), created on first use. Each key has a 4-byte
id (the start of the SHA-256 of its public key) that travels in every token,
so a verifier knows which key to check against:

- the *active* key signs new tokens;
- older keys keep verifying the cards already printed, until *retired*
  (``flask cards retire-key <id>``), after which their tokens are invalid.

``CARD_SIGNING_KEY`` (PEM or base64 of the raw 32-byte private key) may name
the signing key instead, and ``CARD_VERIFY_KEYS`` (comma-separated base64 raw
public keys) adds keys that only verify: a deployment whose instance folder
is read-only, or a verification-only server.

Every process caches the key ring and looks at the file's modification time
at most once a second, so a rotation done by the CLI reaches running web
workers without a restart. Writers take an exclusive lock, so two processes
starting at once never create two different first keys.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

from app.services.errors import ServiceError

KEYS_FILE = "keys.json"
RELOAD_SECONDS = 1.0


def key_id(public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:4]


@dataclass
class CardKey:
    kid: bytes
    public_key: Ed25519PublicKey
    private_key: Ed25519PrivateKey | None
    created_at: str | None = None
    retired_at: str | None = None
    source: str = "file"  # "file" or "config"

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()


@dataclass
class KeyRing:
    keys: dict[bytes, CardKey]
    active: CardKey | None
    loaded_at: float
    stamp: tuple[int, int] | None

    def verifier(self, kid: bytes) -> Ed25519PublicKey | None:
        key = self.keys.get(kid)
        if key is None or key.retired_at is not None:
            return None
        return key.public_key


_cache: dict[str, KeyRing] = {}
_lock = threading.Lock()


def keys_dir() -> Path:
    configured = current_app.config.get("CARD_KEYS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "card_keys"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _private_from_text(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ServiceError(f"CARD_SIGNING_KEY is not an Ed25519 private key: {exc}") from None


def _private_raw(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def _public_raw(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


# --- the file ----------------------------------------------------------------------------


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(folder: Path) -> dict:
    path = folder / KEYS_FILE
    if not path.exists():
        return {"active": None, "keys": {}}
    return json.loads(path.read_text())


def _write(folder: Path, data: dict) -> None:
    tmp = folder / f".{KEYS_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / KEYS_FILE)


def _new_entry(data: dict) -> str:
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key()).hex()
    data["keys"][kid] = {"private_key": _private_raw(private), "public_key": _public_raw(private.public_key()),
                         "created_at": _now(), "retired_at": None}
    data["active"] = kid
    return kid


# --- loading -----------------------------------------------------------------------------


def _load(folder: Path, stamp: tuple[int, int] | None) -> KeyRing:
    data = _read(folder)
    keys: dict[bytes, CardKey] = {}
    for kid_hex, entry in data.get("keys", {}).items():
        private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(entry["private_key"]))
        public = private.public_key()
        keys[key_id(public)] = CardKey(key_id(public), public, private, entry.get("created_at"),
                                       entry.get("retired_at"))
    active = keys.get(bytes.fromhex(data["active"])) if data.get("active") else None
    configured = current_app.config.get("CARD_SIGNING_KEY")
    if configured:
        private = _private_from_text(configured)
        kid = key_id(private.public_key())
        active = keys.get(kid) or CardKey(kid, private.public_key(), private, source="config")
        keys[kid] = active
    for text in (current_app.config.get("CARD_VERIFY_KEYS") or "").split(","):
        if text.strip():
            try:
                public = Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
            except ValueError as exc:
                raise ServiceError(f"CARD_VERIFY_KEYS holds a value that is not an Ed25519 public key: {exc}") from None
            keys.setdefault(key_id(public), CardKey(key_id(public), public, None, source="config"))
    return KeyRing(keys=keys, active=active, loaded_at=time.monotonic(), stamp=stamp)


def _stamp(folder: Path) -> tuple[int, int] | None:
    try:
        stat = (folder / KEYS_FILE).stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def keyring(*, refresh: bool = False) -> KeyRing:
    """This process's view of the keys, re-read when the file changed.

    The file is looked at once a second at most, or at once with ``refresh``.
    """
    folder = keys_dir()
    cache_key = str(folder)
    ring = _cache.get(cache_key)
    now = time.monotonic()
    if ring is not None and not refresh and now - ring.loaded_at < RELOAD_SECONDS:
        return ring
    with _lock:
        ring = _cache.get(cache_key)
        stamp = _stamp(folder)
        if ring is not None and stamp == ring.stamp:
            ring.loaded_at = now
            return ring
        ring = _load(folder, stamp)
        _cache[cache_key] = ring
        return ring


def signing_key() -> CardKey:
    """The active key, generating the first one on first use."""
    ring = keyring()
    if ring.active is not None:
        return ring.active
    folder = keys_dir()
    with _locked(folder):
        data = _read(folder)
        if not data.get("active"):
            _new_entry(data)
            _write(folder, data)
    ring = keyring(refresh=True)
    assert ring.active is not None
    return ring.active


def public_key_for(kid: bytes) -> Ed25519PublicKey | None:
    """The key that verifies tokens with this id; None when unknown or retired.

    An unknown id makes the ring be re-read (at most once a second): the
    key may have been created by another process moments ago.
    """
    ring = keyring()
    key = ring.verifier(kid)
    if key is None and kid not in ring.keys:
        key = keyring(refresh=True).verifier(kid)
    return key


# --- rotation (CLI) ----------------------------------------------------------------------


def rotate() -> CardKey:
    """Make a new active key; the previous ones keep verifying until retired."""
    folder = keys_dir()
    with _locked(folder):
        data = _read(folder)
        kid = _new_entry(data)
        _write(folder, data)
    ring = keyring(refresh=True)
    if current_app.config.get("CARD_SIGNING_KEY"):
        raise ServiceError("CARD_SIGNING_KEY is set, so it stays the signing key; unset it to use the new key "
                           f"{kid}.")
    return ring.keys[bytes.fromhex(kid)]


def retire(kid_hex: str) -> CardKey:
    """Stop accepting tokens signed by a key (cards printed with it then verify as invalid)."""
    folder = keys_dir()
    kid_hex = kid_hex.strip().lower()
    with _locked(folder):
        data = _read(folder)
        entry = data["keys"].get(kid_hex)
        if entry is None:
            raise ServiceError(f"There is no key {kid_hex} in {folder / KEYS_FILE}.")
        if data.get("active") == kid_hex:
            raise ServiceError(f"{kid_hex} is the active key: rotate first (flask cards rotate-key).")
        if entry.get("retired_at") is None:
            entry["retired_at"] = _now()
            _write(folder, data)
    return keyring(refresh=True).keys[bytes.fromhex(kid_hex)]


def list_keys() -> list[CardKey]:
    ring = keyring(refresh=True)
    return sorted(ring.keys.values(), key=lambda k: (k.created_at or "", k.kid))
