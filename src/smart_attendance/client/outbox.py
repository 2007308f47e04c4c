"""A queue of scans on disk: nothing is lost when the server is down or the client restarts.

Each scan is a folder ``<capture time>_<event id>/`` holding ``scan.json`` (event id, capture
time, camera, fps) and its JPEG frames, or for a badge read at the door its token instead of
frames (``put_badge``; sent to ``POST /checkin``). It is written under a temporary name and
renamed, so a half-written scan is never sent; it is deleted only after the server has answered
it. The event id makes a resend harmless: the server never marks twice for one event.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Scan:
    folder: Path
    event_id: str
    captured_at: str
    camera: str
    fps: float
    badge: str | None = None  # a badge's token: a check-in, without frames

    def frames(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.folder.glob("*.jpg"))]


class Outbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for stale in self.root.glob(".tmp-*"):  # a crash while writing: never complete
            shutil.rmtree(stale, ignore_errors=True)

    def put(
        self,
        frames: list[bytes],
        camera: str,
        fps: float,
        captured_at: datetime | None = None,
        badge: str | None = None,
    ) -> Scan:
        stamp = (captured_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
        event_id = uuid.uuid4().hex
        name = f"{stamp:%Y%m%dT%H%M%S%f}_{event_id}"
        tmp = self.root / f".tmp-{name}"
        tmp.mkdir()
        for i, frame in enumerate(frames):
            (tmp / f"{i:03d}.jpg").write_bytes(frame)
        meta = {
            "event_id": event_id,
            "captured_at": stamp.isoformat(),
            "camera": camera,
            "fps": fps,
        }
        if badge is not None:
            meta["badge"] = badge
        (tmp / "scan.json").write_text(json.dumps(meta), encoding="utf-8")
        final = self.root / name
        tmp.rename(final)
        return self._load(final)

    def _load(self, folder: Path) -> Scan:
        meta = json.loads((folder / "scan.json").read_text(encoding="utf-8"))
        badge = meta.get("badge")
        return Scan(
            folder,
            meta["event_id"],
            meta["captured_at"],
            meta["camera"],
            float(meta["fps"]),
            str(badge) if badge else None,
        )

    def put_badge(self, token: str, camera: str, captured_at: datetime | None = None) -> Scan:
        """Queue a badge's check-in (its token, no frames)."""
        return self.put([], camera, 0.0, captured_at, badge=token)

    def pending(self) -> list[Scan]:
        with self._lock:
            folders = sorted(
                p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
        scans = []
        for folder in folders:
            try:
                scans.append(self._load(folder))
            except (OSError, ValueError, KeyError):
                continue
        return scans

    def __len__(self) -> int:
        return len(self.pending())

    def done(self, scan: Scan) -> None:
        with self._lock:
            shutil.rmtree(scan.folder, ignore_errors=True)

    def wait_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            time.sleep(0.2)
        return not self.pending()
