"""Badges in a camera frame: the QR codes of printed cards (the server's ``people/badges.py``
prints them), read with OpenCV's own detectors (no model file).

A card held up to a door camera is small, tilted and noisy: ``cv2.QRCodeDetectorAruco`` finds
it more often than ``cv2.QRCodeDetector``, and a code found but not decoded (modules of two or
three pixels) is decoded again from its region enlarged twice. A frame without any QR code
costs one detection (a few milliseconds at 640x480). QR codes that are not badges (a poster, a
phone) are ignored: a badge's text starts with ``SA1:``.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

PREFIX = "SA1:"  # the payload of the server's cards (people/badges.py), version 1


def badge_token(text: str) -> str | None:
    """The token of a QR code's text when it is a badge, else None."""
    if not text.startswith(PREFIX):
        return None
    token = text[len(PREFIX) :].strip()
    return token or None


class BadgeReader:
    """Reads badge tokens from BGR frames (not thread-safe: one per camera loop)."""

    def __init__(self) -> None:
        self._finder = cv2.QRCodeDetectorAruco()
        self._decoder = cv2.QRCodeDetector()

    def read(self, frame: np.ndarray) -> list[str]:
        """The badge tokens in ``frame``, each once, in the order found."""
        tokens = []
        for text in self._texts(frame):
            token = badge_token(text)
            if token and token not in tokens:
                tokens.append(token)
        return tokens

    def _texts(self, frame: np.ndarray) -> list[str]:
        try:
            found, texts, points, _ = self._finder.detectAndDecodeMulti(frame)
        except cv2.error as exc:  # a frame OpenCV cannot read: no badge in it
            log.debug("QR detection failed: %s", exc)
            return []
        if not found or points is None:
            return []
        decoded = []
        for text, quad in zip(texts, points, strict=False):
            decoded.append(text or self._enlarged(frame, quad))
        return [text for text in decoded if text]

    def _enlarged(self, frame: np.ndarray, quad: np.ndarray) -> str:
        """A code found but not decoded, decoded from its region enlarged twice."""
        x, y, w, h = cv2.boundingRect(np.asarray(quad, dtype=np.float32))
        pad = max(w, h) // 4
        crop = frame[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
        if crop.size == 0:
            return ""
        big = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        try:
            text = self._finder.detectAndDecode(big)[0] or self._decoder.detectAndDecode(big)[0]
        except cv2.error:
            return ""
        return str(text)
