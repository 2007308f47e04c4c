"""The heads-up display, drawn on the camera frame (BGR).

In the original's spirit (corner brackets, a moving scan line, a status panel, a result card)
plus the face box, an eye-openness meter, live guidance, the server connection state, the
number of queued scans and, when the server asks for one, the challenge's current action with
an arrow.

The screen is laid out in bands that never overlap (``layout``): the status bar at the top,
the guidance bar at the bottom, and between them the scan area framed by the corner brackets.
Cards (a result, a challenge step) sit at the bottom of the scan area *between* the brackets'
arms. While a card shows, the guidance bar is empty: "Blink to scan" is not shown after a scan.

The preview can be mirrored (``HudState.mirror``, the client's default): students see
themselves as in a mirror, so turning to their left moves their picture to the screen's left,
the way the challenge's arrow points. Only the picture is flipped; the text is not, and the
frames sent to the server are the camera's own.

Text is drawn with a TrueType font (DejaVu Sans when installed, else Pillow's own), so names
with accents show as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..models import LIVENESS_FAILED, RECOGNISED, STATUS_LATE, UNKNOWN, Box, Recognition
from . import words

CYAN = (255, 220, 0)
GREEN = (80, 200, 60)
AMBER = (0, 190, 255)
RED = (60, 60, 230)
WHITE = (245, 245, 245)
GREY = (190, 190, 190)
FONT = cv2.FONT_HERSHEY_SIMPLEX  # kept for callers drawing their own labels

KIND_COLORS = {
    "present": GREEN,
    "late": AMBER,
    "queued": CYAN,
    "scanning": CYAN,
    "challenge": CYAN,
}


@dataclass
class Prompt:
    """The challenge's current action, as the HUD shows it."""

    action: str  # blink, blink_twice, turn_left, turn_right (or one unknown here)
    words: str  # in plain words
    step: int  # 1-based
    steps: int
    left_s: float  # seconds left before the challenge expires
    total_s: float


@dataclass
class HudState:
    t: float = 0.0
    faces: int = 0
    box: Box | None = None
    openness: float | None = None  # EAR over the open-eye baseline (1.0 = fully open)
    blinking: bool = False
    guidance: str = "Look at the camera"
    server: str = "connecting"
    queued: int = 0
    camera: str = "default"
    fps: float = 0.0
    fps_warning: str = ""  # the camera's rate is unlike the one assumed: said in the status
    result: dict[str, str] = field(default_factory=dict)  # title, detail, kind
    result_until: float = 0.0
    prompt: Prompt | None = None  # a challenge in progress
    mirror: bool = False

    def card_showing(self) -> bool:
        return bool(self.result) and self.t <= self.result_until


# The server's reasons for refusing a scan, in a few plain words for the result card.
PLAIN_REASONS = {
    "captured_at_out_of_window": "too old, or the clock is wrong",
    "bad_image": "an unreadable image",
    "unsupported_image": "an image type not taken",
    "too_large": "too large for the server",
    "forbidden": "not allowed for this camera",
    "conflict": "in conflict with the server",
}
# Bad request messages by their start (the server words the field it did not take).
PLAIN_PREFIXES = {
    "camera id": "camera id not accepted",
    "event id": "event id not accepted",
    "fps": "frame rate not accepted",
    "captured_at": "capture time not accepted",
    "capture time": "capture time not accepted",
}


def plain_reason(answer: Recognition) -> str:
    """Why the server refused a scan, in plain words (short enough for the card)."""
    for key in (answer.reason or "", answer.status):
        if key in PLAIN_REASONS:
            return PLAIN_REASONS[key]
    reason = answer.reason or ""
    for start, plain in PLAIN_PREFIXES.items():
        if reason.lower().startswith(start):
            return plain
    return (reason or answer.status).replace("_", " ")


def _card(key: str, kind: str, **values: object) -> dict[str, str]:
    title, detail = words.card(key, **values)
    return {"title": title, "detail": detail, "kind": kind}


def result_card(
    answer: Recognition, display_names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The result card (title, detail, kind) for the server's answer to a scan, in plain
    words; a student by their display name (``display_names``: folder name -> display name,
    as the server sent them), else their folder name made readable. A scan the server refused
    (anything but an answer) is "Refused" with the reason in plain words."""
    first = answer.first
    if answer.status == RECOGNISED and first is not None:
        # The server sends the folder name as the display name when it has none.
        given = getattr(first, "display_name", None)
        if not isinstance(given, str) or given in ("", first.name):
            given = (display_names or {}).get(first.name)
        name = words.display_name(first.name, None if given == first.name else given)
        if first.attendance is None:  # seen outside every class period
            return {"title": name, "detail": words.say("no_class"), "kind": "present"}
        kind = "late" if first.attendance == STATUS_LATE else "present"
        detail = (
            first.attendance if first.new else words.say("already", attendance=first.attendance)
        )
        return {"title": name, "detail": detail, "kind": kind}
    if answer.status == LIVENESS_FAILED:
        title, detail = words.liveness_card(answer.reason)
        return {"title": title, "detail": detail, "kind": "unknown"}
    if answer.status.startswith("badge_"):  # badge_unknown, badge_revoked, badge_inactive
        return _card("badge_refused", "unknown", reason=plain_reason(answer))
    if answer.status == UNKNOWN:
        known = ("unknown_face", "no_face", "face_too_small")
        return _card(answer.reason if answer.reason in known else "unknown", "unknown")
    return _card("refused", "unknown", reason=plain_reason(answer))


def guidance_for(grey: np.ndarray, boxes: list[Box], width: int) -> str:
    if float(grey.mean()) < 45:
        return words.say("too_dark")
    if not boxes:
        return words.say("look")
    if len(boxes) > 1:
        return words.say("one_person")
    if boxes[0].width < 0.22 * width:
        return words.say("closer")
    return words.say("blink_to_scan")


# --- layout -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rect:
    x1: int
    y1: int
    x2: int
    y2: int

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x1 < other.x2 and other.x1 < self.x2 and self.y1 < other.y2 and other.y1 < self.y2
        )


@dataclass(frozen=True)
class Layout:
    unit: float  # pixels per "point": 1.0 at 480 lines, 1.5 at 720
    status: Rect  # the status bar
    guidance: Rect  # the guidance bar
    scan: Rect  # the corner brackets' frame
    arm: int  # the brackets' arm length
    card: Rect  # result and challenge cards

    def brackets(self) -> list[Rect]:
        """The brackets' arms as thin rectangles (for overlap checks)."""
        s, a = self.scan, self.arm
        arms = []
        for x, dx in ((s.x1, 1), (s.x2, -1)):
            for y, dy in ((s.y1, 1), (s.y2, -1)):
                xs, ys = sorted((x, x + dx * a)), sorted((y, y + dy * a))
                arms.append(Rect(xs[0] - 1, y - 1, xs[1] + 2, y + 2))  # horizontal
                arms.append(Rect(x - 1, ys[0] - 1, x + 2, ys[1] + 2))  # vertical
        return arms


def layout(width: int, height: int) -> Layout:
    u = max(0.75, min(height / 480, width / 640))
    status = Rect(0, 0, width, round(50 * u))
    guidance = Rect(0, height - round(46 * u), width, height)
    gap = round(8 * u)
    margin = round(0.06 * width)
    scan = Rect(margin, status.y2 + gap, width - margin, guidance.y1 - gap)
    arm = round(0.12 * min(scan.x2 - scan.x1, scan.y2 - scan.y1))
    card_h = round(84 * u)
    card = Rect(scan.x1 + arm + gap, scan.y2 - card_h, scan.x2 - arm - gap, scan.y2)
    return Layout(u, status, guidance, scan, arm, card)


# --- drawing ------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        return ImageFont.load_default(size)


def text_width(text: str, size: int, bold: bool = False) -> int:
    left, _, right, _ = _font(size, bold).getbbox(text)
    return int(right - left)


def fit(text: str, size: int, max_width: int, bold: bool = False) -> tuple[str, int]:
    """``text`` at ``size`` px, or smaller (down to 70%) to fit ``max_width``; cut short with
    "..." when even that is too wide."""
    smallest = max(8, round(size * 0.7))
    while size > smallest and text_width(text, size, bold) > max_width:
        size -= 1
    if text_width(text, size, bold) <= max_width:
        return text, size
    while len(text) > 1 and text_width(text + "...", size, bold) > max_width:
        text = text[:-1]
    return text.rstrip() + "...", size


def put_text(
    out: np.ndarray,
    text: str,
    x: int,
    y: int,
    size: int,
    color: tuple[int, int, int],
    bold: bool = False,
) -> int:
    """Draw ``text`` with its top left at (x, y) (its ink's top); the width drawn."""
    if not text:
        return 0
    font = _font(size, bold)
    left, top, right, bottom = font.getbbox(text)
    h, w = out.shape[:2]
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(w, x + int(right - left) + 2), min(h, y + int(bottom - top) + 2)
    if x2 <= x1 or y2 <= y1:
        return 0
    region = Image.fromarray(np.ascontiguousarray(out[y1:y2, x1:x2]))
    # The array is BGR and so is ``color``: the bytes land as given.
    ImageDraw.Draw(region).text((x - x1 - left, y - y1 - top), text, font=font, fill=color)
    out[y1:y2, x1:x2] = np.asarray(region)
    return int(right - left)


def _shade(frame: np.ndarray, r: Rect, alpha: float = 0.6) -> None:
    x1, y1 = max(0, r.x1), max(0, r.y1)
    x2, y2 = min(frame.shape[1], r.x2), min(frame.shape[0], r.y2)
    region = frame[y1:y2, x1:x2]
    region[:] = (region * (1 - alpha)).astype(np.uint8)


def _brackets(
    frame: np.ndarray,
    x1: int,
    y1: int,
    x2: int,
    y2: int,
    color: tuple[int, int, int],
    length: int,
    thickness: int = 2,
) -> None:
    for cx, cy, dx, dy in ((x1, y1, 1, 1), (x2, y1, -1, 1), (x1, y2, 1, -1), (x2, y2, -1, -1)):
        cv2.line(frame, (cx, cy), (cx + dx * length, cy), color, thickness, cv2.LINE_AA)
        cv2.line(frame, (cx, cy), (cx, cy + dy * length), color, thickness, cv2.LINE_AA)


def arrow_direction(action: str) -> int:
    """Which way the arrow points on the screen: -1 left, +1 right, 0 no arrow. The student
    faces the screen, so their left is the screen's left whether or not the preview is
    mirrored (mirrored, their picture turns the same way)."""
    return {"turn_left": -1, "turn_right": 1}.get(action, 0)


def _arrow(out: np.ndarray, cx: int, cy: int, length: int, direction: int, u: float) -> None:
    half = length // 2
    start, end = (cx - direction * half, cy), (cx + direction * half, cy)
    thick = max(3, round(7 * u))
    cv2.arrowedLine(out, start, end, (0, 0, 0), thick + 4, cv2.LINE_AA, tipLength=0.45)
    cv2.arrowedLine(out, start, end, CYAN, thick, cv2.LINE_AA, tipLength=0.45)


def _eye(out: np.ndarray, cx: int, cy: int, size: int, u: float) -> None:
    """A small eye icon (for a blink step)."""
    thick = max(2, round(3 * u))
    cv2.ellipse(out, (cx, cy), (size, size // 2), 0, 0, 360, CYAN, thick, cv2.LINE_AA)
    cv2.circle(out, (cx, cy), max(3, size // 3), CYAN, -1, cv2.LINE_AA)


def _mirrored(box: Box, width: int) -> Box:
    return Box(width - box.right, box.top, width - box.left, box.bottom)


def draw(frame: np.ndarray, state: HudState) -> np.ndarray:
    """A new frame with the HUD drawn over ``frame`` (mirrored first when ``state.mirror``)."""
    out = cv2.flip(frame, 1) if state.mirror else frame.copy()
    h, w = out.shape[:2]
    lay = layout(w, h)
    u = lay.unit
    s = lay.scan
    box = _mirrored(state.box, w) if state.box is not None and state.mirror else state.box

    _brackets(out, s.x1, s.y1, s.x2, s.y2, CYAN, lay.arm, max(2, round(2 * u)))
    # The scan line sweeps down and up inside the brackets.
    phase = (state.t * 0.6) % 2.0
    y = s.y1 + int((s.y2 - s.y1) * (phase if phase <= 1 else 2 - phase))
    cv2.line(out, (s.x1, y), (s.x2, y), CYAN, 1, cv2.LINE_AA)

    if box is not None:
        color = AMBER if state.blinking else GREEN
        _brackets(out, box.left, box.top, box.right, box.bottom, color, max(8, box.width // 6), 2)
        if state.openness is not None:  # eye-openness meter beside the face
            bar = max(8, round(8 * u))
            mx, my, mh = min(w - bar - 6, box.right + 8), box.top, box.height
            cv2.rectangle(out, (mx, my), (mx + bar, my + mh), WHITE, 1)
            level = float(np.clip(state.openness, 0.0, 1.2)) / 1.2
            cv2.rectangle(
                out, (mx + 1, my + mh - int(mh * level)), (mx + bar - 1, my + mh - 1), color, -1
            )

    _status(out, state, lay)

    card_showing = state.card_showing()
    if card_showing:
        _result(out, state, lay)
    elif state.prompt is not None:
        _challenge(out, state.prompt, box, lay)
    # Guidance: not while a card says what happened; during a challenge only a problem
    # ("Come closer"), never "Blink to scan" beside another action.
    text = state.guidance
    calm = (words.say("blink_to_scan"), words.say("hold_still"), words.say("next_student"))
    if card_showing or (state.prompt is not None and text in calm):
        text = ""
    if text:
        g = lay.guidance
        _shade(out, g, 0.65)
        shown, size = fit(text, round(24 * u), w - round(24 * u), bold=True)
        tw = text_width(shown, size, True)
        ty = g.y1 + (g.y2 - g.y1 - size) // 2
        put_text(out, shown, (w - tw) // 2, ty, size, WHITE, bold=True)
    return out


def _status(out: np.ndarray, state: HudState, lay: Layout) -> None:
    u, bar = lay.unit, lay.status
    _shade(out, bar, 0.65)
    size = round(15 * u)
    pad = round(10 * u)
    line1 = bar.y1 + round(7 * u)
    line2 = line1 + round(20 * u)
    x = pad + put_text(out, "SMART ATTENDANCE", pad, line1, size, WHITE, bold=True)
    put_text(out, f"  {state.camera}", x, line1, size, GREY)
    server_color = {"online": GREEN, "offline": RED, "denied": RED, "wrong url": RED}.get(
        state.server, AMBER
    )
    x = pad + put_text(out, f"server: {state.server}", pad, line2, size, server_color)
    x += put_text(out, f"   queued: {state.queued}   ", x, line2, size, WHITE)
    rate = f"{state.fps:4.1f} fps"
    if state.fps_warning:
        shown, small = fit(state.fps_warning, size, out.shape[1] - x - pad)
        put_text(out, shown, x, line2, small, AMBER)
    else:
        put_text(out, rate, x, line2, size, WHITE)


def _card_frame(out: np.ndarray, r: Rect, color: tuple[int, int, int], u: float) -> None:
    _shade(out, r, 0.88)
    cv2.rectangle(out, (r.x1, r.y1), (r.x2 - 1, r.y2 - 1), color, max(2, round(3 * u)))


def _result(out: np.ndarray, state: HudState, lay: Layout) -> None:
    u, r = lay.unit, lay.card
    kind = state.result.get("kind", "unknown")
    color = KIND_COLORS.get(kind, RED)
    _card_frame(out, r, color, u)
    pad = round(14 * u)
    inner = r.x2 - r.x1 - 2 * pad
    title, size = fit(state.result.get("title", ""), round(30 * u), inner, bold=True)
    put_text(out, title, r.x1 + pad, r.y1 + round(12 * u), size, color, bold=True)
    detail, dsize = fit(state.result.get("detail", ""), round(19 * u), inner)
    put_text(out, detail, r.x1 + pad, r.y1 + round(54 * u), dsize, WHITE)


def _challenge(out: np.ndarray, prompt: Prompt, box: Box | None, lay: Layout) -> None:
    u, r = lay.unit, lay.card
    _card_frame(out, r, CYAN, u)
    pad = round(14 * u)
    direction = arrow_direction(prompt.action)
    icon = round(64 * u)  # room for the arrow or the eye, on the side the arrow points
    text_x1, text_x2 = r.x1 + pad, r.x2 - pad
    icon_cx = r.x1 + pad + icon // 2 if direction <= 0 else r.x2 - pad - icon // 2
    if direction <= 0:
        text_x1 += icon + pad // 2
    else:
        text_x2 -= icon + pad // 2
    icon_cy = r.y1 + round(30 * u)
    if direction:
        _arrow(out, icon_cx, icon_cy, icon, direction, u)
    else:
        _eye(out, icon_cx, icon_cy, round(22 * u), u)
    title, size = fit(prompt.words, round(26 * u), text_x2 - text_x1, bold=True)
    put_text(out, title, text_x1, r.y1 + round(14 * u), size, WHITE, bold=True)
    step = words.say("step", step=prompt.step, steps=prompt.steps)
    put_text(out, step, text_x1, r.y1 + round(50 * u), round(17 * u), GREY)
    # Time left, as a bar along the card's bottom edge.
    left = 0.0 if prompt.total_s <= 0 else max(0.0, min(1.0, prompt.left_s / prompt.total_s))
    y = r.y2 - round(9 * u)
    x2 = r.x1 + pad + int((r.x2 - r.x1 - 2 * pad) * left)
    cv2.line(out, (r.x1 + pad, y), (x2, y), AMBER if left < 0.3 else CYAN, max(2, round(4 * u)))
    # A large arrow beside the face, on the side the student should turn to.
    if direction and box is not None:
        length = max(40, round(0.6 * box.width))
        cx = box.left - length // 2 - round(16 * u) if direction < 0 else box.right + length // 2
        cx += 0 if direction < 0 else round(24 * u)  # beyond the eye-openness meter
        cy = box.top + box.height // 2
        cx = max(length // 2 + 4, min(out.shape[1] - length // 2 - 4, cx))
        _arrow(out, cx, cy, length, direction, u)
