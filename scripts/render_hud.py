"""Render the door screen's HUD states to docs/img/hud-<state>-<width>.png, at 640x480 and
1280x720, over a drawn scene (a room and a drawn head: no real face is used).

.venv/bin/python scripts/render_hud.py            # all states, both sizes
.venv/bin/python scripts/render_hud.py ready      # some states only

The states are those a student meets: ready, a challenge step (turn, then blink), scanning,
recognised, not recognised, liveness failed, and the server offline (blink mode: the scan is
saved; challenge mode: no face scan, the badge still works).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from smart_attendance.client import hud, words
from smart_attendance.models import Box, MarkResult, Recognition

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
SIZES = ((640, 480), (1280, 720))


def scene(
    w: int, h: int, turn: float = 0.0, eyes_closed: bool = False, light: float = 1.0
) -> tuple[np.ndarray, Box]:
    """A plain room and a drawn head (BGR), and the head's face box. ``turn``: -1..1, the
    features moved towards the image's left or right (a head turning)."""
    frame = np.zeros((h, w, 3), np.uint8)
    rows = np.arange(h)[:, None]
    frame[:] = np.stack(
        [150 - rows * 60 // h, 140 - rows * 48 // h, 122 - rows * 40 // h], axis=-1
    ).astype(np.uint8)
    cv2.rectangle(frame, (0, int(h * 0.76)), (w, h), (70, 80, 95), -1)  # a desk
    cv2.rectangle(
        frame, (int(w * 0.07), int(h * 0.18)), (int(w * 0.2), int(h * 0.6)), (95, 120, 140), -1
    )  # a door
    cx, cy = w // 2, int(h * 0.5)
    rx, ry = int(h * 0.19), int(h * 0.25)
    cv2.ellipse(
        frame,
        (cx, cy + int(ry * 1.75)),
        (int(rx * 1.6), int(ry * 0.9)),
        0,
        180,
        360,
        (120, 90, 60),
        -1,
    )  # shoulders
    cv2.ellipse(frame, (cx, cy), (rx, ry), 0, 0, 360, (150, 175, 215), -1)
    cv2.ellipse(
        frame,
        (cx, cy - int(ry * 0.55)),
        (int(rx * 1.05), int(ry * 0.5)),
        0,
        180,
        360,
        (40, 50, 60),
        -1,
    )
    shift = int(turn * rx * 0.45)
    eye_y = cy - int(ry * 0.1)
    for side in (-1, 1):
        ex = cx + shift + side * int(rx * 0.38)
        if eyes_closed:
            cv2.line(
                frame, (ex - int(rx * 0.17), eye_y), (ex + int(rx * 0.17), eye_y), (60, 60, 80), 3
            )
        else:
            cv2.ellipse(
                frame, (ex, eye_y), (int(rx * 0.17), int(rx * 0.09)), 0, 0, 360, (250, 250, 250), -1
            )
            cv2.circle(frame, (ex + shift // 4, eye_y), int(rx * 0.06), (60, 40, 30), -1)
    nose = (cx + int(shift * 1.4), cy + int(ry * 0.18))
    cv2.line(frame, (cx + shift, eye_y + int(ry * 0.05)), nose, (110, 130, 170), 3)
    cv2.ellipse(
        frame,
        (cx + shift, cy + int(ry * 0.45)),
        (int(rx * 0.3), int(ry * 0.08)),
        0,
        0,
        180,
        (80, 80, 160),
        3,
    )
    frame = np.clip(frame.astype(np.float32) * light, 0, 255).astype(np.uint8)
    box = Box(cx - int(rx * 0.95), cy - int(ry * 0.75), cx + int(rx * 0.95), cy + int(ry * 0.95))
    return frame, box


def _card(key: str, kind: str, **values: object) -> dict[str, str]:
    title, detail = words.card(key, **values)
    return {"title": title, "detail": detail, "kind": kind}


def _base(box: Box | None, **changes: object) -> hud.HudState:
    state = hud.HudState(
        t=0.55,
        box=box,
        openness=1.0 if box is not None else None,
        server="online",
        camera="door-1",
        fps=24.8,
        guidance=words.say("blink_to_scan"),
        mirror=True,
    )
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def _challenge(action: str, step: int, left_s: float) -> hud.Prompt:
    return hud.Prompt(action, words.action_words(action), step, 2, left_s, 17.0)


def states(w: int, h: int) -> dict[str, tuple[np.ndarray, hud.HudState]]:
    face, box = scene(w, h)
    turning, _ = scene(w, h, turn=0.6)
    closed, _ = scene(w, h, eyes_closed=True)
    dark, _ = scene(w, h, light=0.35)
    recognised = Recognition(
        "success", marks=(MarkResult("greg_hall", "Present", True, "08:52:10"),)
    )
    late = Recognition("success", marks=(MarkResult("zoe_martin", "Late", True, "09:07:41"),))
    return {
        "ready": (face, _base(box)),
        "challenge": (
            turning,
            _base(box, prompt=_challenge("turn_left", 1, 14.2)),
        ),
        "challenge-blink": (
            closed,
            _base(
                box,
                openness=0.35,
                blinking=True,
                prompt=_challenge("blink", 2, 4.0),
            ),
        ),
        "scanning": (face, _base(box, result=_card("scanning", "scanning"), result_until=9.0)),
        "recognised": (
            face,
            _base(box, result=hud.result_card(recognised), result_until=3.0),
        ),
        "late": (
            face,
            _base(
                box,
                result=hud.result_card(late, {"zoe_martin": "Zoë Martín"}),
                result_until=3.0,
            ),
        ),
        "unknown": (
            face,
            _base(
                box,
                result=hud.result_card(Recognition("unknown", reason="unknown_face")),
                result_until=3.0,
            ),
        ),
        "liveness-failed": (
            face,
            _base(
                box,
                result=hud.result_card(
                    Recognition("liveness_failed", reason="action_missing:turn_left")
                ),
                result_until=3.0,
            ),
        ),
        "offline": (
            dark,
            _base(
                None,
                server="offline",
                queued=3,
                guidance=words.say("too_dark"),
                result=_card("queued", "queued", state="offline"),
                result_until=3.0,
            ),
        ),
        "offline-challenge": (
            face,
            _base(box, server="offline", guidance=words.say("offline_no_challenge")),
        ),
        "slow-camera": (
            face,
            _base(
                box,
                fps=9.6,
                fps_warning=words.say("fps_warning", measured=9.6, expected=30),
            ),
        ),
    }


def main(argv: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    wanted: Callable[[str], bool] = (lambda name: name in argv) if argv else (lambda _n: True)
    for w, h in SIZES:
        for name, (frame, state) in states(w, h).items():
            if not wanted(name):
                continue
            target = OUT / f"hud-{name}-{w}.png"
            cv2.imwrite(str(target), hud.draw(frame, state))
            print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
