"""Every sentence the door screen shows, in one table, in plain words.

The product has no language setting yet (the dashboard and the reports are in English), so the
table is English only. A translation would be a second table with the same keys and a setting
choosing it; a key missing there falls back to ``ENGLISH``.

The server's answers carry codes (``unknown_face``, ``nonce_expired``,
``action_missing:turn_left``); ``card_words`` turns one into a title and a detail a student
understands ("Not recognised" / "Ask your teacher").
"""

from __future__ import annotations

ENGLISH: dict[str, str] = {
    # Guidance, at the bottom of the screen.
    "too_dark": "Too dark: turn on a light",
    "look": "Look at the camera",
    "one_person": "One person at a time",
    "closer": "Come closer",
    "blink_to_scan": "Blink to scan",
    "hold_still": "Hold still...",
    "next_student": "Done: next student, please",
    "offline_no_challenge": "Server offline: show your badge or see your teacher",
    "denied_no_challenge": "Camera not allowed by the server: see your teacher",
    # Challenge actions, as the HUD prompts them (the student's own left and right).
    "action.blink": "Blink",
    "action.blink_twice": "Blink twice",
    "action.turn_left": "Turn your head to your left",
    "action.turn_right": "Turn your head to your right",
    "action.other": "Follow the instruction",  # an action this client does not know
    "step": "Step {step} of {steps}",
    # Result cards: title | detail.
    "scanning": "Checking...|One moment",
    "queued": "Saved|Server {state}: will send later",
    "badge_read": "Badge read|Checking in",
    "badge_queued": "Badge read|Server {state}: will send later",
    "not_saved": "Not saved|The disk is full: see your teacher",
    "no_class": "no class now",
    "already": "{attendance} (already marked)",
    "unknown_face": "Not recognised|Ask your teacher",
    "no_face": "No face seen|Look at the camera and try again",
    "face_too_small": "Too far away|Come closer and try again",
    "unknown": "Not recognised|Ask your teacher",
    "liveness": "Please blink|No blink was seen: try again",
    "liveness.blink": "Please blink|No blink was seen: try again",
    "liveness.nonce_missing": "Try again|The check did not start",
    "liveness.nonce_unknown": "Try again|The check was not recognised",
    "liveness.nonce_expired": "Too slow|Try again, a little faster",
    "liveness.nonce_used": "Try again|That check was used already",
    "liveness.face_changed": "One person only|Stay alone in front of the camera",
    "liveness.action_missing": "Try again|{missed}",
    "missed.blink": "No blink was seen",
    "missed.blink_twice": "Two blinks were not seen",
    "missed.turn_left": "Your head did not turn to your left",
    "missed.turn_right": "Your head did not turn to your right",
    "missed.other": "A step was not seen",
    "liveness.actions_out_of_order": "Try again|Do the steps in the order shown",
    "liveness.action_not_asked": "Try again|Do only the steps shown, then hold still",
    "liveness.action_too_soon": "Try again|Wait for each step to show, then do it",
    "liveness.action_too_late": "Too slow|Try again, a little faster",
    "liveness.no_neutral_start": "Try again|Face the camera with your eyes open first",
    "liveness.nonce_replaced": "Try again|A newer check has started",
    "liveness.fps_inconsistent": "Try again|The camera's timing is off: see your teacher",
    "liveness.fps_too_low": "Try again|A little faster, please",
    "challenge_too_slow": "Too slow|Try again, a little faster",
    "challenge_lost": "Try again|Stay in front of the camera",
    "badge_refused": "Badge refused|{reason}",
    "refused": "Refused|{reason}",
    # The status panel.
    "fps_warning": "camera {measured:.0f} fps, not {expected:.0f}: using {measured:.0f}",
}


def say(key: str, **values: object) -> str:
    """The sentence for ``key`` with ``values`` filled in (the key itself when unknown)."""
    text = ENGLISH.get(key, key)
    return text.format(**values) if values else text


def card(key: str, **values: object) -> tuple[str, str]:
    """A result card's title and detail for ``key``."""
    title, _, detail = say(key, **values).partition("|")
    return title, detail


def action_words(action: str, prompt: str = "") -> str:
    """A challenge action in plain words; the server's own prompt for an action unknown here."""
    key = f"action.{action}"
    if key in ENGLISH:
        return ENGLISH[key]
    return prompt or ENGLISH["action.other"]


# The blink-mode reasons of the server, which are sentences already (recognition/service.py).
BLINK_REASONS = ("send a burst of frames around a blink", "no blink seen in the burst")


def liveness_card(reason: str | None) -> tuple[str, str]:
    """Why a liveness check failed, for the card: ``nonce_expired``, ``face_changed``,
    ``action_missing:turn_left``... or, in blink mode, the server's sentence."""
    code, _, arg = (reason or "").partition(":")
    if code == "action_missing":
        missed = ENGLISH.get(f"missed.{arg}", ENGLISH["missed.other"])
        return card("liveness.action_missing", missed=missed)
    key = f"liveness.{code}"
    if key in ENGLISH:
        return card(key)
    return card("liveness")


def display_name(name: str, given: str | None = None) -> str:
    """The name to show: the display name the server sent, else the dataset folder's name
    with underscores as spaces, each word capitalised (``greg_hall`` -> ``Greg Hall``)."""
    if given and given.strip():
        return given.strip()
    words = name.replace("_", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words) or name
