"""Every exception the product raises on purpose. The web app translates them in one place
(``web.ERROR_STATUS``), the CLI in another (``cli.friendly_errors``).

    AttendanceError                     base: ``str(error)`` is one line meant for a person
     +-- ConfigError                    a setting is missing or has a bad value (start-up stops)
     |    +-- DataKeyError              stored data was encrypted with a key this server lacks
     +-- MissingExtraError              a command needs an optional part that is not installed
     +-- ModelFilesError                dlib's model files cannot be found
     |    +-- DlibFormatError           the network file is not the layout the converter knows
     +-- ImageError                     an upload or a photo cannot be used
     |    +-- UnsupportedImageError     not an image type we accept (SVG, PDF, GIF, ...)
     |    +-- ImageTooLargeError        too many pixels (decompression bomb) or too many bytes
     +-- BadRequestError                a request field has a bad value (camera id, event id, fps)
     |    +-- CaptureTimeError          a scan's capture time is outside the accepted window (422)
     +-- NotFoundError                  the request names something that does not exist (a student)
     +-- ConflictError                  the request clashes with what exists (a name already taken)
     +-- LoginError                     a dashboard sign-in was refused (never says which part)
     |    +-- TooManyAttemptsError      too many failed logins lately; ``retry_after_s`` says when
     +-- ForbiddenError                 the signed-in user's role or classes do not allow this
     |    +-- BadgeRefusedError         a badge unknown, revoked, or of a student who left
     +-- NotReadyError                  enrolment has not finished, or no face engine here
     +-- RateLimitedError               asked too often (``POST /send_report``); ``retry_after_s``
     +-- WorkerCrashedError             a recognition worker process died (it is replaced)
     |    +-- WorkerTimeoutError        a worker call took too long: the worker was replaced
     +-- StoreError                     the database cannot be reached or refused a write
     +-- MailError                      the report could not be sent (never shows the password)
     |    +-- MailNotConfiguredError    SENDER_EMAIL, TEACHER_EMAIL (or Gmail's password) empty
     |    +-- MailUnavailableError      the SMTP server cannot be reached or refused the message
     |    +-- MailAuthError             the SMTP server refused the sender's login
     |    +-- MailTimeoutError          the SMTP server did not answer in time
     +-- SourceError                    a camera, stream, video file or image folder cannot be read
     +-- DisplayError                   the client's preview window cannot be opened

A test checks that this drawing names every class below, with its real parent.
"""

from __future__ import annotations


class AttendanceError(Exception):
    """Base class: ``str(error)`` is a one-line message meant for a person."""


class ConfigError(AttendanceError):
    """A setting is missing or invalid; the message names the setting."""


class DataKeyError(ConfigError):
    """Encrypted data that none of the configured data keys opens (ATTENDANCE_DATA_KEY)."""


class MissingExtraError(AttendanceError):
    """A command needs an optional dependency group (``[server]`` or ``[client]``)."""


class ModelFilesError(AttendanceError):
    """dlib's model files (from face-recognition-models) are missing."""


class DlibFormatError(ModelFilesError):
    """The descriptor network file is not the layout the ONNX converter knows."""


class ImageError(AttendanceError):
    """An image cannot be decoded (empty, truncated, corrupt)."""


class UnsupportedImageError(ImageError):
    """The bytes are a file type we do not accept."""


class ImageTooLargeError(ImageError):
    """The image has more pixels, or the upload more bytes, than the configured limit."""


class BadRequestError(AttendanceError):
    """A request field has a bad value (camera id, event id, fps, capture time)."""


class CaptureTimeError(BadRequestError):
    """A scan's capture time (``captured_at``) is older than ATTENDANCE_CLOCK_WINDOW_HOURS or
    in the future: the scan is not recorded. ``reason`` is its stable code for cameras,
    ``captured_at_out_of_window``; a client keeps such a scan aside, it never resends it."""

    reason = "captured_at_out_of_window"


class NotFoundError(AttendanceError):
    """The request names something that does not exist (an unknown student)."""


class ConflictError(AttendanceError):
    """The request clashes with what exists (a student name already taken)."""


class LoginError(AttendanceError):
    """A login was refused: unknown name, wrong password or a disabled account alike."""


class TooManyAttemptsError(LoginError):
    """Too many failed logins for this account or address; wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ForbiddenError(AttendanceError):
    """The signed-in user may not see or change this (another teacher's class, admin pages)."""


class BadgeRefusedError(ForbiddenError):
    """A badge that checks nobody in; ``reason`` is its code for cameras: ``badge_unknown``,
    ``badge_revoked`` or ``badge_inactive`` (the student left or is not in the registry)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotReadyError(AttendanceError):
    """The server is still enrolling the dataset, or this process has no face engine."""


class RateLimitedError(AttendanceError):
    """Asked more often than allowed (the report sent by hand); wait ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class WorkerCrashedError(AttendanceError):
    """A recognition worker process died while handling a request; it is replaced."""


class WorkerTimeoutError(WorkerCrashedError):
    """A recognition worker call took longer than ``ATTENDANCE_WORKER_TIMEOUT_S``; the worker
    was stopped and replaced."""


class StoreError(AttendanceError):
    """The database failed; nothing was recorded and the caller may retry."""


class MailError(AttendanceError):
    """The report could not be sent. Messages never contain the password."""


class MailNotConfiguredError(MailError):
    """SENDER_EMAIL or TEACHER_EMAIL is empty, or SENDER_PASSWORD for Gmail's server."""


class MailUnavailableError(MailError):
    """The SMTP server cannot be reached, or it refused the message."""


class MailAuthError(MailError):
    """The SMTP server refused the sender's login."""


class MailTimeoutError(MailError):
    """The SMTP server did not answer within the timeout."""


class SourceError(AttendanceError):
    """A camera, stream, video file or folder cannot be opened."""


class DisplayError(AttendanceError):
    """The preview window cannot be opened (no display)."""
