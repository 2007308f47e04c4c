"""The heads-up display, drawn on the camera frame with OpenCV (BGR).

In the original's spirit (corner brackets, a moving scan line, a status panel, a result card)
plus the face box, an eye-openness meter, live guidance, the server connection state and the
number of queued scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..models import LIVENESS_FAILED, RECOGNISED, STATUS_LATE, UNKNOWN, Box, Recognition

CYAN = (255, 220, 0)
GREEN = (80, 200, 60)
AMBER = (0, 190, 255)
RED = (60, 60, 230)
WHITE = (245, 245, 245)
FONT = cv2.FONT_HERSHEY_SIMPLEX


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
    result: dict[str, str] = field(default_factory=dict)  # title, detail, kind
    result_until: float = 0.0


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
    for start, words in PLAIN_PREFIXES.items():
        if reason.lower().startswith(start):
            return words
    return (reason or answer.status).replace("_", " ")


def result_card(answer: Recognition) -> dict[str, str]:
    """The result card (title, detail, kind) for the server's answer to a scan; a scan the
    server refused (anything but an answer) is "Refused" with the reason in plain words."""
    first = answer.first
    if answer.status == RECOGNISED and first is not None:
        if first.attendance is None:  # seen outside every class period
            return {"title": first.name, "detail": "no class now", "kind": "present"}
        kind = "late" if first.attendance == STATUS_LATE else "present"
        detail = first.attendance + ("" if first.new else " (already marked)")
        return {"title": first.name, "detail": detail, "kind": kind}
    if answer.status == LIVENESS_FAILED:
        return {"title": "Please blink", "detail": answer.reason or "", "kind": "unknown"}
    if answer.status.startswith("badge_"):  # badge_unknown, badge_revoked, badge_inactive
        return {"title": "Badge refused", "detail": answer.reason or "", "kind": "unknown"}
    if answer.status == UNKNOWN:
        return {"title": "Unknown", "detail": answer.reason or "", "kind": "unknown"}
    return {"title": "Refused", "detail": plain_reason(answer), "kind": "unknown"}


def guidance_for(grey: np.ndarray, boxes: list[Box], width: int) -> str:
    if float(grey.mean()) < 45:
        return "Too dark: turn on a light"
    if not boxes:
        return "Look at the camera"
    if len(boxes) > 1:
        return "One person at a time"
    if boxes[0].width < 0.22 * width:
        return "Come closer"
    return "Blink to scan"


def _panel(frame: np.ndarray, x: int, y: int, w: int, h: int, alpha: float = 0.55) -> None:
    x2, y2 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    region = frame[y:y2, x:x2]
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


def draw(frame: np.ndarray, state: HudState) -> np.ndarray:
    """A new frame with the HUD drawn over ``frame``."""
    out = frame.copy()
    h, w = out.shape[:2]
    scale = max(0.45, w / 1100)
    margin = int(0.08 * min(w, h))
    _brackets(out, margin, margin, w - margin, h - margin, CYAN, int(0.08 * min(w, h)), 2)
    # The scan line sweeps down and up inside the brackets.
    span = h - 2 * margin
    phase = (state.t * 0.6) % 2.0
    y = margin + int(span * (phase if phase <= 1 else 2 - phase))
    cv2.line(out, (margin, y), (w - margin, y), CYAN, 1, cv2.LINE_AA)

    if state.box is not None:
        b = state.box
        color = AMBER if state.blinking else GREEN
        _brackets(out, b.left, b.top, b.right, b.bottom, color, max(8, b.width // 6), 2)
        if state.openness is not None:  # eye-openness meter beside the face
            mx, my, mh = min(w - 14, b.right + 8), b.top, b.height
            cv2.rectangle(out, (mx, my), (mx + 8, my + mh), WHITE, 1)
            level = float(np.clip(state.openness, 0.0, 1.2)) / 1.2
            cv2.rectangle(
                out, (mx + 1, my + mh - int(mh * level)), (mx + 7, my + mh - 1), color, -1
            )

    # Status panel.
    _panel(out, 0, 0, int(250 * scale / 0.58), int(78 * scale / 0.58))
    server_color = {"online": GREEN, "offline": RED, "denied": RED, "wrong url": RED}.get(
        state.server, AMBER
    )
    lines = [
        (f"SMART ATTENDANCE  {state.camera}", WHITE),
        (f"server: {state.server}", server_color),
        (f"queued scans: {state.queued}   {state.fps:4.1f} fps", WHITE),
    ]
    for i, (text, color) in enumerate(lines):
        cv2.putText(
            out, text, (8, int((20 + 22 * i) * scale / 0.58)), FONT, scale, color, 1, cv2.LINE_AA
        )

    # Guidance, bottom centre.
    text = state.guidance
    (tw, th), _ = cv2.getTextSize(text, FONT, scale * 1.1, 2)
    tx, ty = (w - tw) // 2, h - margin // 2
    _panel(out, tx - 8, ty - th - 8, tw + 16, th + 16)
    cv2.putText(out, text, (tx, ty), FONT, scale * 1.1, WHITE, 2, cv2.LINE_AA)

    # Result card.
    if state.result and state.t <= state.result_until:
        kind = state.result.get("kind", "unknown")
        color = {"present": GREEN, "late": AMBER, "queued": CYAN}.get(kind, RED)
        title, detail = state.result.get("title", ""), state.result.get("detail", "")
        card_w, card_h = int(w * 0.5), int(70 * scale / 0.58)
        cx, cy = w - card_w - 10, 10
        _panel(out, cx, cy, card_w, card_h, 0.7)
        cv2.rectangle(out, (cx, cy), (cx + card_w, cy + card_h), color, 2)
        cv2.putText(
            out,
            title[:28],
            (cx + 10, cy + int(30 * scale / 0.58)),
            FONT,
            scale * 1.2,
            color,
            2,
            cv2.LINE_AA,
        )
        cv2.putText(
            out,
            detail[:36],
            (cx + 10, cy + int(58 * scale / 0.58)),
            FONT,
            scale,
            WHITE,
            1,
            cv2.LINE_AA,
        )
    return out
