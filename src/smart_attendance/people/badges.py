"""``BadgeService``: printed QR cards that check a student in without their face, for students
who refuse face recognition and for days the camera cannot recognise anyone.

A card holds ``SA1:`` and a random token (``secrets.token_urlsafe(24)``, 192 bits); the store
keeps only the token's SHA-256, so the token exists on the card alone (never in the database, a
log or a command's output). Printing a student's card again revokes their earlier cards;
``revoke`` revokes them without a new one. A card works whatever the student's face consent:
it is the alternative to their face.

A camera that reads a card sends its token to ``POST /checkin``; ``check_in`` marks the
student like a recognised face (``AttendanceService.mark``, signed ``badge:CAMERA``). An
unknown token, a revoked card and a student who left raise ``BadgeRefusedError`` with a
reason code (``badge_unknown``, ``badge_revoked``, ``badge_inactive``).

The cards themselves (``render_card``, ``cards_pdf``, ``card_png``): credit-card size at 300
dpi (85.6 x 54 mm) with the QR code, the display name, the class and how to use it; a PDF puts
ten on each A4 page, with cut lines.

The services this one uses (the register's marks, the audit log) are passed in by ``app`` and
described here by what they do (``Register``, ``Trail``), so the registry imports neither.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Protocol

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from ..db.badges import BadgeRow
from ..db.store import Store
from ..errors import BadgeRefusedError, BadRequestError, NotFoundError
from ..models import RECOGNISED, Clock, MarkResult, Recognition

log = logging.getLogger(__name__)

PREFIX = "SA1:"  # what a QR code of ours starts with (version 1 of the payload)
TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
HOW_TO = "Smart Attendance badge: show it to the door camera"

UNKNOWN, REVOKED, INACTIVE = "badge_unknown", "badge_revoked", "badge_inactive"


class Register(Protocol):
    """What a check-in needs of the register (``AttendanceService``)."""

    def seen_at(self, captured_at: str | None) -> datetime: ...

    def mark(
        self,
        names: Sequence[str],
        seen_at: datetime,
        camera: str,
        event_id: str | None,
        source: str | None = None,
        key_name: str = "",
    ) -> list[MarkResult]: ...


class Trail(Protocol):
    """The audit log (``privacy.audit.AuditLog``)."""

    def record(self, actor: str, action: str, subject: str = "", detail: str = "") -> None: ...


@dataclass(frozen=True)
class NewBadge:
    """A card to print: made by ``prepare``, valid once ``issue`` has stored it."""

    student: str
    display_name: str
    token: str = field(repr=False)

    @property
    def payload(self) -> str:
        """The QR code's text."""
        return PREFIX + self.token


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_of(text: str) -> str | None:
    """The token of a badge's text (with or without ``SA1:``), None when it cannot be one."""
    token = text.strip().removeprefix(PREFIX)
    return token if TOKEN_RE.match(token) else None


class BadgeService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        register: Register,
        audit: Trail,
        on_marked: Callable[[date], None] = lambda _day: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.register = register
        self.audit = audit
        self.on_marked = on_marked  # a new mark on that day (the CSV files are brought up to date)

    def _now_utc(self) -> datetime:
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    # --- printing and revoking ------------------------------------------------------------------

    def prepare(self, names: Sequence[str]) -> list[NewBadge]:
        """New cards for these students of the registry (active ones), each with a fresh
        token; nothing is stored until ``issue``."""
        if not names:
            raise BadRequestError("name at least one student (or a class with students)")
        cards = []
        for name in dict.fromkeys(names):
            row = self.store.student(name)
            if row is None:
                raise NotFoundError(f"no student named {name!r}")
            if not row.active:
                raise BadRequestError(f"{name} has left (inactive): no badge printed")
            token = secrets.token_urlsafe(TOKEN_BYTES)
            cards.append(NewBadge(name, row.display_name or name, token))
        return cards

    def issue(self, cards: Sequence[NewBadge], actor: str) -> list[BadgeRow]:
        """Make the cards valid (their students' earlier cards stop working), in one
        transaction; each is recorded in the audit log."""
        rows = self.store.issue_badges(
            [(card.student, digest(card.token)) for card in cards], self._now_utc(), actor
        )
        for row in rows:
            self.audit.record(
                actor, "badge", row.student, f"badge #{row.id} printed; earlier badges revoked"
            )
        return rows

    def revoke(self, name: str, actor: str) -> list[BadgeRow]:
        """Revoke the student's valid cards; the cards revoked (none: they had none)."""
        if self.store.student(name) is None and not self.store.badge_rows(name, revoked=True):
            raise NotFoundError(f"no student named {name!r}")
        rows = self.store.revoke_badges(name, self._now_utc())
        if rows:
            ids = ", ".join(f"#{row.id}" for row in rows)
            self.audit.record(actor, "badge", name, f"badge {ids} revoked")
        return rows

    def badges(self, student: str | None = None, revoked: bool = False) -> list[BadgeRow]:
        return self.store.badge_rows(student, revoked)

    # --- checking in ----------------------------------------------------------------------------

    def student_of(self, text: str) -> tuple[str, BadgeRow]:
        """The student a badge's text checks in, and its card; ``BadgeRefusedError`` when it
        checks nobody in."""
        token = token_of(text)
        row = self.store.badge_by_digest(digest(token)) if token else None
        if row is None:
            raise BadgeRefusedError("not a badge of this school", UNKNOWN)
        if not row.valid:
            raise BadgeRefusedError("this badge was revoked; ask the office for a new one", REVOKED)
        student = self.store.student(row.student)
        if student is None or not student.active:
            raise BadgeRefusedError("this badge's student is no longer on the roll", INACTIVE)
        return row.student, row

    def check_in(
        self,
        text: str,
        camera: str,
        event_id: str | None = None,
        captured_at: str | None = None,
        key_name: str = "",
    ) -> Recognition:
        """Mark the badge's student as a recognised face would be (``camera`` and
        ``event_id`` already checked by the caller), signed ``badge:CAMERA`` (``key_name``:
        the camera key that sent it); each mark names the student's display name, as a
        recognised face's does."""
        seen_at = self.register.seen_at(captured_at)  # a bad capture time: 400 first
        try:
            name, row = self.student_of(text)
        except BadgeRefusedError as exc:
            log.warning("badge refused at camera %s: %s", camera, exc.reason)
            raise
        marks = self.register.mark(
            [name], seen_at, camera, event_id, source=f"badge:{camera}", key_name=key_name
        )
        if any(mark.new for mark in marks):
            self.on_marked(seen_at.date())
        log.info("badge #%d checked in at camera %s", row.id, camera)
        student = self.store.student(name)
        shown = (student.display_name if student else "") or name
        return Recognition(RECOGNISED, (), tuple(replace(m, display_name=shown) for m in marks))


# --- the cards ------------------------------------------------------------------------------------

DPI = 300
CARD_PX = (1011, 638)  # 85.6 x 54 mm at 300 dpi
A4_PX = (2480, 3508)
INK = (20, 20, 20)
GREY = (110, 110, 110)


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when the system has it (most Linux systems: accents, Greek, Cyrillic),
    else Pillow's own font."""
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def _fit(
    draw: ImageDraw.ImageDraw,
    text: str,
    width: int,
    sizes: Sequence[int],
    bold: bool = False,
    max_lines: int = 2,
) -> tuple[list[str], ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """``text`` in ``width`` px: on one line at the largest size that fits, else on up to
    ``max_lines`` lines; at the smallest size, what does not fit is cut short (an ellipsis)."""

    def wrap(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> list[str]:
        lines: list[str] = []
        for word in text.split():
            if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        return lines or [""]

    for allowed in range(1, max_lines + 1):  # one line at a smaller size before two
        for size in sizes:
            font = _font(size, bold)
            lines = wrap(font)
            if len(lines) <= allowed and all(draw.textlength(x, font=font) <= width for x in lines):
                return lines, font
    lines = wrap(font)
    kept = lines[:max_lines]
    cut = len(lines) > max_lines or draw.textlength(kept[-1], font=font) > width
    fitted = []
    for i, line in enumerate(kept):
        mark = "…" if cut and i == len(kept) - 1 else ""
        while line and draw.textlength(line + (mark or "…"), font=font) > width:
            line, mark = line[:-1], "…"
        fitted.append(line + mark)
    return fitted, font


def qr_image(payload: str, side: int) -> Image.Image:
    """The QR code of ``payload`` (with its quiet zone of 4 modules), at most ``side`` px."""
    code = segno.make(payload, error="m", micro=False)
    matrix = np.array(list(code.matrix_iter(scale=1, border=4)), dtype=bool)
    scale = max(1, side // matrix.shape[0])
    pixels = np.where(matrix, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L").resize(
        (matrix.shape[1] * scale, matrix.shape[0] * scale), Image.Resampling.NEAREST
    )


def render_card(card: NewBadge, caption: str) -> Image.Image:
    """One card: the QR code on the left; the display name, ``caption`` (the class) and how to
    use it on the right."""
    width, height = CARD_PX
    image = Image.new("RGB", CARD_PX, "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((2, 2, width - 3, height - 3), radius=36, outline=GREY, width=3)
    code = qr_image(card.payload, height - 60)
    image.paste(code, (24, (height - code.height) // 2))
    left = 24 + code.width + 16
    column = width - left - 40
    y = 70
    lines, font = _fit(draw, card.display_name, column, (64, 56, 48, 40, 34), bold=True)
    for line in lines:
        draw.text((left, y), line, font=font, fill=INK)
        y += int(font.size * 1.2) if isinstance(font, ImageFont.FreeTypeFont) else 40
    if caption:
        lines, font = _fit(draw, caption, column, (40, 34, 28), max_lines=1)
        draw.text((left, y + 16), lines[0], font=font, fill=GREY)
    lines, font = _fit(draw, HOW_TO, column, (28, 24, 22))
    bottom = height - 70
    for i, line in enumerate(reversed(lines)):
        draw.text((left, bottom - i * 34), line, font=font, fill=GREY, anchor="ls")
    return image


def card_png(card: Image.Image) -> bytes:
    out = io.BytesIO()
    card.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def card_jpeg(card: Image.Image) -> bytes:
    """The card as a JPEG (high quality: the QR code's edges stay sharp enough to read)."""
    out = io.BytesIO()
    card.convert("RGB").save(out, format="JPEG", quality=95, dpi=(DPI, DPI))
    return out.getvalue()


def cards_pdf(cards: Sequence[Image.Image]) -> bytes:
    """A4 pages of ten cards each (two columns, five rows) at their real size, with cut lines."""
    if not cards:
        raise BadRequestError("no card to print")
    card_w, card_h = CARD_PX
    page_w, page_h = A4_PX
    margin_x, margin_y = (page_w - 2 * card_w) // 2, (page_h - 5 * card_h) // 2
    pages = []
    for start in range(0, len(cards), 10):
        page = Image.new("RGB", A4_PX, "white")
        draw = ImageDraw.Draw(page)
        for x in (margin_x, margin_x + card_w, margin_x + 2 * card_w):
            draw.line((x, 0, x, page_h), fill=(200, 200, 200), width=1)
        for y in range(margin_y, margin_y + 6 * card_h, card_h):
            draw.line((0, y, page_w, y), fill=(200, 200, 200), width=1)
        for i, card in enumerate(cards[start : start + 10]):
            page.paste(card, (margin_x + (i % 2) * card_w, margin_y + (i // 2) * card_h))
        pages.append(page)
    out = io.BytesIO()
    pages[0].save(out, format="PDF", resolution=DPI, save_all=True, append_images=pages[1:])
    return out.getvalue()
