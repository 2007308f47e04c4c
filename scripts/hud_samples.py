"""Render sample HUD frames to docs/hud-*.png (synthetic scene: no real face is used).

.venv/bin/python scripts/hud_samples.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from smart_attendance.client import hud
from smart_attendance.models import Box

ROOT = Path(__file__).resolve().parents[1]


def scene(brightness: float = 1.0) -> np.ndarray:
    """A plain room and a drawn head, 640x480 BGR."""
    h, w = 480, 640
    frame = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        frame[y] = (150 - y // 8, 140 - y // 10, 120 - y // 12)
    cv2.rectangle(frame, (0, 360), (w, h), (70, 80, 95), -1)
    cv2.ellipse(frame, (320, 250), (95, 125), 0, 0, 360, (150, 175, 215), -1)
    cv2.ellipse(frame, (320, 150), (100, 55), 0, 180, 360, (40, 50, 60), -1)
    for x in (285, 355):
        cv2.ellipse(frame, (x, 235), (18, 9), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(frame, (x, 235), 6, (60, 40, 30), -1)
    cv2.ellipse(frame, (320, 310), (30, 10), 0, 0, 180, (80, 80, 160), 3)
    cv2.rectangle(frame, (240, 370), (400, 480), (120, 90, 60), -1)
    return np.clip(frame.astype(np.float32) * brightness, 0, 255).astype(np.uint8)


def main() -> None:
    face = Box(228, 140, 412, 360)
    samples = {
        "hud-ready.png": (
            scene(),
            hud.HudState(
                t=0.4,
                box=face,
                openness=1.0,
                server="online",
                guidance="Blink to scan",
                fps=24.8,
                camera="door-1",
            ),
        ),
        "hud-present.png": (
            scene(),
            hud.HudState(
                t=1.1,
                box=face,
                openness=0.45,
                blinking=True,
                server="online",
                fps=25.1,
                guidance="Blink to scan",
                camera="door-1",
                result={"title": "ana_lima", "detail": "Present", "kind": "present"},
                result_until=3.0,
            ),
        ),
        "hud-offline.png": (
            scene(0.3),
            hud.HudState(
                t=2.2,
                box=None,
                server="offline",
                queued=3,
                fps=24.6,
                camera="door-1",
                guidance="Too dark: turn on a light",
                result={
                    "title": "Queued",
                    "detail": "server offline: will send later",
                    "kind": "queued",
                },
                result_until=4.0,
            ),
        ),
    }
    for name, (frame, state) in samples.items():
        cv2.imwrite(str(ROOT / "docs" / name), hud.draw(frame, state))
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
