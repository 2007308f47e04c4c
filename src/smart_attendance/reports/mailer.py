"""SMTP delivery of a ready message: ssl, starttls or none, login when a password is set.

Every failure becomes a ``MailError`` subclass with a plain message that never contains the
password: unreachable or refusing server (``MailUnavailableError``), refused login
(``MailAuthError``), no answer in time (``MailTimeoutError``).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from ..config import Settings
from ..errors import (
    MailAuthError,
    MailNotConfiguredError,
    MailTimeoutError,
    MailUnavailableError,
)


def missing_settings(settings: Settings) -> list[str]:
    """The email settings that must be set before a report can be sent."""
    missing = [] if settings.sender_email.strip() else ["SENDER_EMAIL"]
    return missing + ([] if settings.recipients else ["TEACHER_EMAIL"])


def check_configured(settings: Settings) -> None:
    missing = missing_settings(settings)
    if missing:
        raise MailNotConfiguredError(f"email is not configured: set {' and '.join(missing)}")


def send(message: EmailMessage, settings: Settings) -> list[str]:
    """Send ``message`` to the configured recipients; return them."""
    check_configured(settings)
    host, port = settings.smtp_host, settings.smtp_port_effective
    where = f"{host}:{port}"
    timeout = settings.smtp_timeout_s
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if settings.smtp_security == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=context)
            if settings.sender_password:
                client.login(settings.sender_email, settings.sender_password)
            refused = client.send_message(message, settings.sender_email, settings.recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailAuthError(
            f"the SMTP server {where} refused the login of {settings.sender_email} "
            f"({exc.smtp_code}); check SENDER_PASSWORD (for Gmail: an app password)"
        ) from None
    except TimeoutError:
        raise MailTimeoutError(f"the SMTP server {where} did not answer in {timeout:g} s") from None
    except smtplib.SMTPServerDisconnected as exc:
        if "timed out" in str(exc):
            raise MailTimeoutError(
                f"the SMTP server {where} did not answer in {timeout:g} s"
            ) from None
        raise MailUnavailableError(f"the SMTP server {where} closed the connection") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailUnavailableError(
            f"the SMTP server {where} does not support this: {exc}"
        ) from None
    except smtplib.SMTPException as exc:
        raise MailUnavailableError(
            f"the SMTP server {where} refused the message: {_short(exc)}"
        ) from None
    except ssl.SSLError as exc:
        raise MailUnavailableError(
            f"TLS with {where} failed ({exc.reason}); check ATTENDANCE_SMTP_SECURITY and "
            "ATTENDANCE_SMTP_PORT"
        ) from None
    except OSError as exc:
        raise MailUnavailableError(
            f"cannot reach the SMTP server {where}: {exc.strerror or exc}"
        ) from None
    delivered = [r for r in settings.recipients if r not in refused]
    if not delivered:
        raise MailUnavailableError(f"the SMTP server {where} refused every recipient")
    return delivered


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:200]
