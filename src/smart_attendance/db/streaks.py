"""The queries of the intruder streaks, mixed into ``Store``: per camera, the unknown frames in
a row and the camera's last intruder capture, shared by every server.

Each step is one atomic statement, so frames of one camera that land on different servers
count once each and the streak completes once: an ``UPDATE ... SET count = ... RETURNING``
(PostgreSQL locks the row until the commit and re-reads it; SQLite has one writer at a time),
and a compare-and-set for the capture. Times are UTC without a zone, like the rest of the store.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import StoreError
from .tables import intruder_streaks as streaks


class StreakQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def count_unknown(self, camera: str, now: datetime, threshold: int) -> bool:
        """Count one unknown frame at ``camera``; True when it completes the streak of
        ``threshold`` frames (the count starts again at 0). Atomic across servers: of frames
        sent to several servers at once, exactly one completes the streak."""
        threshold = max(threshold, 1)
        after = streaks.c.count + 1
        step = (
            update(streaks)
            .where(streaks.c.camera == camera)
            .values(count=case((after >= threshold, 0), else_=after), updated_at=now)
            .returning(streaks.c.count)
        )
        first = 0 if threshold <= 1 else 1
        for _attempt in range(3):
            try:
                with self._begin() as conn:
                    count = conn.execute(step).scalar()
                    if count is None:  # the camera's first unknown frame
                        conn.execute(
                            streaks.insert().values(
                                camera=camera, count=first, updated_at=now, captured_by=""
                            )
                        )
                        count = first
                return int(count) == 0
            except IntegrityError:  # another server inserted the camera first: count again
                continue
        raise StoreError("could not count the intruder streak (conflicting writes); please retry")

    def reset_streak(self, camera: str, now: datetime) -> None:
        """A known face at ``camera``: its streak starts again (nothing written when it is 0)."""
        with self._begin() as conn:
            conn.execute(
                update(streaks)
                .where(streaks.c.camera == camera, streaks.c.count > 0)
                .values(count=0, updated_at=now)
            )

    def claim_capture(self, camera: str, now: datetime, cooldown_s: float, owner: str) -> bool:
        """Record an intruder capture at ``camera`` by ``owner`` (a server), unless another
        server captured there within ``cooldown_s``: the strangers a server saw cannot be
        compared on another (their descriptors are never stored), so within the cooldown only
        the server that made the last capture may make another. True when recorded."""
        since = now - timedelta(seconds=max(cooldown_s, 0.0))
        with self._begin() as conn:
            done = conn.execute(
                update(streaks)
                .where(
                    streaks.c.camera == camera,
                    or_(
                        streaks.c.captured_at.is_(None),
                        streaks.c.captured_at <= since,
                        streaks.c.captured_by == owner,
                    ),
                )
                .values(captured_at=now, captured_by=owner[:64])
            )
        return bool(done.rowcount == 1)

    def intruder_streak(self, camera: str) -> int:
        """The unknown frames in a row at ``camera`` (0 when it never had one)."""
        with self._begin() as conn:
            count = conn.execute(select(streaks.c.count).where(streaks.c.camera == camera)).scalar()
        return int(count or 0)
