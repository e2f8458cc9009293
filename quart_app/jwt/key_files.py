"""Keys generated once into the instance directory, rotated there, and chosen by settings.

A :class:`KeyDirectory` keeps one PEM file per private key (mode 0600) in
``INSTANCE_PATH/jwt-keys``; :func:`rotate_keys` adds a new signing key and keeps every older
public key, for verification and in the JWKS, until the last token it can have signed has
expired. :func:`keys_from_settings` is what ``create_app`` uses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .keys import (
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    Key,
    KeySet,
    family,
    generate_private_key,
    load_private_key,
    private_pem,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: files are still published atomically
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

KEY_DIR_NAME = "jwt-keys"
#: Extra seconds an old key stays accepted after its last token's ``exp`` (clock skew).
RETIREMENT_GRACE = 60.0


def _write_new(directory: Path, name: str, data: bytes) -> bool:
    """Publish ``data`` as ``directory/name`` (0600) unless it exists; True if written.

    Written to a private temporary file and published with ``os.link``, which fails if
    the name exists, so a reader never sees a partial file and two writers never clobber.
    """
    tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, directory / name)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


class KeyDirectory(KeySet):
    """Private keys generated once into a directory and rotated there.

    Files are ``key-<activation ms>-<alg>.pem``: the time from which the key signs. A
    rotation publishes the new key at once (it verifies and is in the JWKS) but dates its
    activation ``activation_delay`` seconds ahead, so that every resource server caching
    the JWKS (``Cache-Control: max-age``) has it before the first token it signs exists;
    ``rotate(now=True)`` is for emergencies (a leaked key). The newest active key of the
    configured algorithm signs; an older key stays accepted until the key after it became
    active plus ``max_token_lifetime`` (the longest a token it signed can live) plus a
    grace minute, then it is deleted at the next rotation. Workers notice new files through
    the directory's mtime, checked when they sign and when a ``kid`` is unknown.
    """

    def __init__(
        self,
        path: str | Path,
        algorithm: str,
        max_token_lifetime: float,
        extra: Iterable[Key] = (),
        activation_delay: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.path = Path(path)
        self.activation_delay = activation_delay
        #: Keys that do not live in the directory (an HS* secret also accepted).
        self.extra = list(extra)
        self.algorithm = algorithm
        self.max_token_lifetime = max_token_lifetime
        self._mtime_ns = -1
        self._checked = 0.0
        self._lock = threading.Lock()
        family(algorithm)  # fail early on an unknown algorithm
        if algorithm in HMAC_ALGORITHMS:
            raise ValueError("HS* algorithms use JWT_SECRET_KEY, not a key directory")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        #: The key this object generated because the directory had none, if it did (the
        #: first ``rotate-keys`` on an empty directory then reports it instead of adding
        #: a second one).
        self.generated: Key | None = None
        with self._locked():
            self._load()
            if not any(k.algorithm == algorithm for k in self._keys):
                self._create(algorithm)
                self._load()
                self.generated = self._keys[-1]
        self._checked = time.monotonic()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock between the processes sharing the directory."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _files(self) -> list[tuple[float, str, Path]]:
        found = []
        for path in self.path.glob("key-*-*.pem"):
            _, created, alg = path.stem.split("-", 2)
            if created.isdigit() and alg in ASYMMETRIC_ALGORITHMS:
                found.append((int(created) / 1000, alg, path))
        return sorted(found)

    def _lifetimes(self) -> list[tuple[float, str, Path, float | None]]:
        """Each key file with the time after which its key is no longer accepted."""
        files = self._files()
        result = []
        for i, (created, alg, path) in enumerate(files):
            successor = files[i + 1][0] if i + 1 < len(files) else None
            expires = None
            if successor is not None:
                expires = successor + self.max_token_lifetime + RETIREMENT_GRACE
            result.append((created, alg, path, expires))
        return result

    def _load(self) -> None:
        self._mtime_ns = self.path.stat().st_mtime_ns
        keys = []
        for created, alg, path, expires in self._lifetimes():
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("%s is readable by group or others (mode %o); chmod 600 it", path, mode)
            try:
                private = load_private_key(path.read_bytes())
                keys.append(Key(alg, private=private, created_at=created, expires_at=expires))
            except (ValueError, TypeError) as error:
                log.error("ignoring unreadable key file %s: %s", path, error)
        self._set([*self.extra, *keys])

    def _create(self, algorithm: str, delay: float = 0.0) -> float:
        """Write a new key file; its activation time (seconds)."""
        # Activation times are unique (and after every key that signs already): a --now
        # key may activate before a delayed one still pending, which takes over later.
        now_ms = int(self.clock() * 1000)
        taken = {round(c * 1000) for c, _, _ in self._files()}
        signing = [c for c in taken if c <= now_ms]
        created = max([now_ms + int(delay * 1000), *(c + 1 for c in signing)])
        while created in taken:
            created += 1
        pem = private_pem(generate_private_key(algorithm))
        if _write_new(self.path, f"key-{created:013d}-{algorithm}.pem", pem):
            log.info("generated a new %s signing key in %s", algorithm, self.path)
        return created / 1000

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < 0.5:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._mtime_ns:
            with self._lock:
                self._load()

    def signing_key(self, algorithm: str) -> Key:
        """The newest key of ``algorithm`` whose activation time has come (the oldest one
        while none has: a directory's first key is active at once)."""
        self.refresh()
        now = self.clock()
        usable = [k for k in self._keys if k.can_sign and k.prepared(algorithm) is not None]
        active = [k for k in usable if k.created_at <= now]
        if active:
            return active[-1]
        if usable:
            return usable[0]
        return super().signing_key(algorithm)

    def rotate(self, algorithm: str | None = None, *, now: bool = False) -> Key:
        """Publish a new signing key, which signs after ``activation_delay`` seconds (at
        once with ``now``); older keys stay accepted until their tokens expire.

        Keys no longer accepted are deleted. Returns the new key.
        """
        algorithm = algorithm or self.algorithm
        family(algorithm)
        with self._locked():
            activates = self._create(algorithm, 0.0 if now else self.activation_delay)
            self._load()
            moment = self.clock()
            for _, _, path, expires in self._lifetimes():
                if expires is not None and expires <= moment:
                    path.unlink(missing_ok=True)
                    log.info("deleted retired key file %s", path.name)
            self._load()
        self._checked = time.monotonic()
        return next(k for k in self._keys if k.created_at == activates and k.can_sign)


def rotate_keys(
    directory: str | Path,
    algorithm: str,
    max_token_lifetime: float,
    activation_delay: float = 0.0,
) -> Key:
    """Add a new signing key to ``directory`` (the ``rotate-keys`` operation).

    Running workers start signing with it ``activation_delay`` seconds later (within half
    a second of their next token after that); tokens signed with older keys keep verifying
    until they expire.
    """
    return KeyDirectory(
        directory, algorithm, max_token_lifetime, activation_delay=activation_delay
    ).rotate()


def key_directory(instance_path: str | Path) -> Path:
    return Path(instance_path) / KEY_DIR_NAME


def _pem_setting(settings: Mapping[str, Any], name: str) -> Any:
    value = settings.get(name)
    if value:
        return value
    path = settings.get(f"{name}_FILE")
    return Path(path).read_bytes() if path else None


def keys_from_settings(settings: Mapping[str, Any]) -> KeySet:
    """The key set for ``create_app``'s settings.

    HS*: ``JWT_SECRET_KEY``. Otherwise ``JWT_PRIVATE_KEY``/``JWT_PUBLIC_KEY`` (PEM text) or
    ``JWT_PRIVATE_KEY_FILE``/``JWT_PUBLIC_KEY_FILE`` (PEM files) when given, else a
    :class:`KeyDirectory` in ``INSTANCE_PATH/jwt-keys`` (generated on first start,
    rotated with :func:`rotate_keys`).
    """
    algorithm = settings.get("JWT_ALGORITHM", "HS256")
    decode = settings.get("JWT_DECODE_ALGORITHMS") or ()
    decode = (decode,) if isinstance(decode, str) else tuple(decode)
    secret = settings.get("JWT_SECRET_KEY") or settings.get("SECRET_KEY")
    private = _pem_setting(settings, "JWT_PRIVATE_KEY")
    public = _pem_setting(settings, "JWT_PUBLIC_KEY")
    if algorithm in HMAC_ALGORITHMS or private or public:
        return KeySet.from_config(algorithm, secret, private, public, decode)
    # An old key must verify until the longest-lived token it signed has expired.
    lifetime = 0.0
    for name in ("JWT_ACCESS_TOKEN_EXPIRES", "JWT_REFRESH_TOKEN_EXPIRES"):
        value = _seconds(settings.get(name, 30 * 86400))
        lifetime = float("inf") if value is None else max(lifetime, value)
    extra = KeySet.from_config(algorithm, secret, None, None, decode).keys()
    return KeyDirectory(
        key_directory(settings.get("INSTANCE_PATH", "instance")),
        algorithm,
        lifetime,
        extra,
        activation_delay=float(settings.get("KEY_ACTIVATION_DELAY", 0.0)),
    )


def _seconds(value: Any) -> float | None:
    if value is False:
        return None
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)
