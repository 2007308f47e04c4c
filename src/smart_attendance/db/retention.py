"""The queries of the retention purge and of once-a-day jobs, mixed into ``Store``."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection


class RetentionQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError
