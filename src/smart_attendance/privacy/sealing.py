"""Encryption at rest: face descriptors and stored photos are sealed with Fernet
(``cryptography``: AES-128-CBC with an HMAC-SHA256, a random IV per message), so a stolen
database file or data folder reveals no face without the key.

The key comes from ``ATTENDANCE_DATA_KEY`` (several keys, comma-separated: the first seals,
every one opens) or from ``DATA_DIR/data_key``, created at the first start with mode 0600 (one
key per line, the first seals). Sealed bytes start with ``MAGIC``, a line that says what the
file is to whoever opens it; photos copied into the dataset by hand are plain until enrolment
seals them, so ``open`` passes plain bytes through unchanged.

Rotation (``attendance encryption rotate``): a new key is put first, every sealed blob is
opened with whichever key sealed it and sealed again with the new one (``MultiFernet.rotate``),
then the old keys are dropped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..config import Settings
from ..db.store import Store
from ..errors import ConfigError, DataKeyError

MAGIC = b"SMART-ATTENDANCE-SEALED-1\n"  # then a Fernet token


class DataSealer:
    """Seals and opens bytes with the data keys (the first one seals)."""

    def __init__(self, keys: Sequence[bytes], source: str = "") -> None:
        if not keys:
            raise ConfigError("no data key")
        self.keys = list(keys)
        self.source = source  # where the keys came from, for messages
        self._fernet = MultiFernet([Fernet(key) for key in self.keys])

    def seal(self, data: bytes) -> bytes:
        return MAGIC + self._fernet.encrypt(data)

    def is_sealed(self, data: bytes) -> bool:
        return data.startswith(MAGIC)

    def open(self, data: bytes) -> bytes:
        if not data.startswith(MAGIC):
            return data
        try:
            return self._fernet.decrypt(data[len(MAGIC) :])
        except InvalidToken:
            where = self.source or "this server"
            raise DataKeyError(
                f"stored data cannot be decrypted with the data key of {where}: it was "
                "encrypted with another key (ATTENDANCE_DATA_KEY, DATA_DIR/data_key)"
            ) from None

    def reseal(self, data: bytes) -> bytes:
        """Sealed ``data`` sealed again with the first key (plain data: sealed)."""
        if not data.startswith(MAGIC):
            return self.seal(data)
        try:
            return MAGIC + self._fernet.rotate(data[len(MAGIC) :])
        except InvalidToken:
            raise DataKeyError(
                "stored data cannot be decrypted with any of the data keys"
            ) from None


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str, where: str) -> list[bytes]:
    """Keys separated by commas or lines; a key that is not a Fernet key is a ``ConfigError``."""
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise ConfigError(f"{where}: no key found")
    for key in keys:
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                f"{where}: not a data key (32 url-safe base64 bytes); "
                "`attendance encryption new-key` prints one"
            ) from None
    return [key.encode("ascii") for key in keys]


def replace_whole(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` whole or not at all: a temporary file (``mode``), synced, renamed over
    the old one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Write the key file whole, mode 0600 (one key per line, the first seals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_whole(path, b"".join(key + b"\n" for key in keys))


def load_sealer(settings: Settings, create: bool = True) -> DataSealer:
    """The data keys of ``settings``: ATTENDANCE_DATA_KEY, else DATA_DIR/data_key (made now
    with mode 0600 when ``create`` and it does not exist yet)."""
    if settings.data_key:
        return DataSealer(
            parse_keys(settings.data_key, "ATTENDANCE_DATA_KEY"), "ATTENDANCE_DATA_KEY"
        )
    path = settings.data_key_file
    if not path.exists() and create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        except OSError as exc:
            raise ConfigError(f"cannot create the data key file {path}: {exc.strerror}") from None
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(new_key() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigError(
            f"no data key: {path} does not exist and ATTENDANCE_DATA_KEY is empty"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the data key file {path}: {exc}") from None
    return DataSealer(parse_keys(text, str(path)), str(path))


def _reseal_file(path: Path, sealer: DataSealer) -> bool:
    """Seal one sealed file again with the first key (same mode, whole or not at all)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not sealer.is_sealed(data):
        return False
    replace_whole(path, sealer.reseal(data), path.stat().st_mode & 0o777)
    return True


def reseal_everything(settings: Settings, store: Store, sealer: DataSealer) -> tuple[int, int]:
    """Seal every stored descriptor and sealed file again with ``sealer``'s first key;
    (descriptors, files) done."""
    descriptors = 0
    for sha256, pipeline, blob in store.descriptor_blobs():
        store.replace_descriptor_blob(sha256, pipeline, sealer.reseal(blob))
        descriptors += 1
    files = 0
    for folder in (settings.dataset_dir, settings.intruders_dir, settings.review_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                files += _reseal_file(path, sealer)
    return descriptors, files


def rotate(settings: Settings, store: Store) -> tuple[str, int, int]:
    """Rotate the data key: a new key seals everything again. With the key file, the new key
    is written first (old keys kept until every blob is resealed, then dropped); with
    ATTENDANCE_DATA_KEY, everything is sealed again with its first key and the caller says
    to drop the others. Returns (where the key is, descriptors, files)."""
    if settings.data_key:
        sealer = load_sealer(settings)
        descriptors, files = reseal_everything(settings, store, sealer)
        return "ATTENDANCE_DATA_KEY", descriptors, files
    old = load_sealer(settings, create=False)
    fresh = Fernet.generate_key()
    write_key_file(settings.data_key_file, [fresh, *old.keys])
    both = DataSealer([fresh, *old.keys], old.source)
    store.sealer = both
    descriptors, files = reseal_everything(settings, store, both)
    write_key_file(settings.data_key_file, [fresh])
    store.sealer = DataSealer([fresh], old.source)
    return str(settings.data_key_file), descriptors, files
