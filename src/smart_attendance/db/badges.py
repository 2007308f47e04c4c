"""The queries of badge check-in (printed QR cards), mixed into ``Store``."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection


class BadgeQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError
