"""Exceptions raised by the core. The web app and the CLI translate them, each in one place.

   AttendanceError                  base: every error the product means to report in plain words
    +-- ConfigError                 a setting is missing or has a bad value (start-up stops)
    +-- ModelFilesError             dlib's model files cannot be found
    +-- ImageError                  an upload or a photo cannot be used
    |    +-- UnsupportedImageError  not an image type we accept (SVG, PDF, GIF, ...)
    |    +-- ImageTooLargeError     too many pixels (decompression bomb) or too many bytes
    +-- NotReadyError               enrolment has not finished yet
    +-- StoreError                  the database cannot be reached or refused a write
+-- WorkerCrashedError          a recognition worker process died (it is replaced)
"""

from __future__ import annotations


class AttendanceError(Exception):
    """Base class: ``str(error)`` is a one-line message meant for a person."""


class ConfigError(AttendanceError):
    """A setting is missing or invalid; the message names the setting."""


class ModelFilesError(AttendanceError):
    """dlib's model files (from face-recognition-models) are missing."""


class ImageError(AttendanceError):
    """An image cannot be decoded (empty, truncated, corrupt)."""


class UnsupportedImageError(ImageError):
    """The bytes are a file type we do not accept."""


class ImageTooLargeError(ImageError):
    """The image has more pixels, or the upload more bytes, than the configured limit."""


class NotReadyError(AttendanceError):
    """The server is still enrolling the dataset."""


class StoreError(AttendanceError):
    """The database failed; nothing was recorded and the caller may retry."""


class WorkerCrashedError(AttendanceError):
    """A recognition worker process died while handling a request; the pool is rebuilt."""


class MailError(AttendanceError):
    """The report could not be sent. Messages never contain the password."""


class MailNotConfiguredError(MailError):
    """SENDER_EMAIL or TEACHER_EMAIL is empty."""


class MailUnavailableError(MailError):
    """The SMTP server cannot be reached, or it refused the message."""


class MailAuthError(MailError):
    """The SMTP server refused the sender's login."""


class MailTimeoutError(MailError):
    """The SMTP server did not answer within the timeout."""
