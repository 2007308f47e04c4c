"""Commands over the register (marks, corrections, statistics, exports, the timetable)."""

from __future__ import annotations
