"""SMTP delivery of ready messages: ssl, starttls or none, login when a password is set.
With ``ssl`` or ``starttls`` nothing is sent on a connection that is not encrypted (a server
without STARTTLS gets neither the password nor a message); only ``none`` sends in clear.

``send_all`` sends several messages (the whole school's report and one per class) in one SMTP
session and says, message by message, who received it or why not: a message the server
refuses (its recipients, its size) does not stop the others. A connection lost half-way is
opened again once; a server that cannot be reached, refuses the login or does not answer fails
every message left with the same error (it would only fail them again, one timeout each).

Every failure becomes a ``MailError`` subclass with a plain message that never contains the
password: unreachable or refusing server (``MailUnavailableError``), refused login
(``MailAuthError``), no answer in time (``MailTimeoutError``).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from ..config import Settings
from ..errors import (
    MailAuthError,
    MailError,
    MailNotConfiguredError,
    MailTimeoutError,
    MailUnavailableError,
)

# Refusals of one message; the session goes on with the next.
_MESSAGE_REFUSED = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)


GMAIL = "smtp.gmail.com"  # the default SMTP host, which always asks for a login


def missing_settings(settings: Settings) -> list[str]:
    """Every email setting that must be set before a report can be sent: the sender, its
    password when the server is Gmail's (it always asks for one), the recipients."""
    missing = [] if settings.sender_email.strip() else ["SENDER_EMAIL"]
    if not settings.sender_password and settings.smtp_host.strip().lower() == GMAIL:
        missing.append("SENDER_PASSWORD")
    return missing + ([] if settings.recipients else ["TEACHER_EMAIL"])


def names(items: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def not_configured(missing: Sequence[str]) -> str:
    """Why a report cannot be sent, every missing setting named, and where to set them."""
    return (
        f"email is not configured: set {names(missing)} in .env (in the server's folder) or "
        "the environment, then restart the server; see docs/report.md (for Gmail: an app "
        "password)"
    )


def check_configured(settings: Settings) -> None:
    missing = missing_settings(settings)
    if missing:
        raise MailNotConfiguredError(not_configured(missing))


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message: the recipients the server accepted, or why none;
    ``reached``: whether the mail server was reached (False: it could not be connected to)."""

    delivered: tuple[str, ...]
    error: MailError | None = None
    reached: bool = True


def send(message: EmailMessage, settings: Settings) -> list[str]:
    """Send ``message`` to the configured recipients (``TEACHER_EMAIL``); return them."""
    [delivery] = send_all([(message, settings.recipients)], settings)
    if delivery.error is not None:
        raise delivery.error
    return list(delivery.delivered)


def send_all(
    batch: Sequence[tuple[EmailMessage, Sequence[str]]], settings: Settings
) -> list[Delivery]:
    """Send each message to its recipients in one SMTP session; one ``Delivery`` per message,
    in order. Raises only ``MailNotConfiguredError`` (nothing was tried)."""
    check_configured(settings)
    results: list[Delivery] = []
    client: smtplib.SMTP | None = None
    reconnects = 1
    try:
        for index, (message, recipients) in enumerate(batch):
            if client is None:
                try:
                    opened = _open(settings)
                except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                    error = _mail_error(exc, settings)
                    results += [Delivery((), error, reached=False) for _ in batch[index:]]
                    break
                try:
                    client = _start(opened, settings)
                except MailUnavailableError as exc:  # no TLS where the settings want it
                    results += [Delivery((), exc) for _ in batch[index:]]
                    break
                except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                    error = _mail_error(exc, settings)
                    results += [Delivery((), error) for _ in batch[index:]]
                    break
            try:
                refused = client.send_message(message, settings.sender_email, list(recipients))
            except _MESSAGE_REFUSED as exc:
                results.append(Delivery((), _mail_error(exc, settings)))
                continue
            except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                results.append(Delivery((), _mail_error(exc, settings)))
                _close(client)
                client = None
                if reconnects == 0:
                    results += [
                        Delivery((), _mail_error(exc, settings)) for _ in batch[index + 1 :]
                    ]
                    break
                reconnects -= 1
                continue
            delivered = tuple(r for r in recipients if r not in refused)
            results.append(Delivery(delivered))
    finally:
        if client is not None:
            _close(client)
    return results


def _open(settings: Settings) -> smtplib.SMTP:
    """A connection to the SMTP server, its greeting read (the server is reached)."""
    host, port = settings.smtp_host, settings.smtp_port_effective
    timeout = settings.smtp_timeout_s
    if settings.smtp_security == "ssl":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    return smtplib.SMTP(host, port, timeout=timeout)


def _start(client: smtplib.SMTP, settings: Settings) -> smtplib.SMTP:
    """``client`` after STARTTLS and the login the settings ask for (closed if they fail).

    With ``starttls``, a server that does not offer it (or a man in the middle who strips it
    from the server's answer) gets no password and no message: only ``none`` sends in clear."""
    try:
        if settings.smtp_security == "starttls":
            client.ehlo_or_helo_if_needed()
            if not client.has_extn("starttls"):
                raise _no_tls(settings)
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_security != "none" and not isinstance(client.sock, ssl.SSLSocket):
            raise _no_tls(settings)
        if settings.sender_password:
            client.login(settings.sender_email, settings.sender_password)
    except BaseException:
        _close(client)
        raise
    return client


def _no_tls(settings: Settings) -> MailUnavailableError:
    """The refusal to go on without TLS: the password is not sent in clear unless
    ``ATTENDANCE_SMTP_SECURITY=none`` says so."""
    where = f"{settings.smtp_host}:{settings.smtp_port_effective}"
    return MailUnavailableError(
        f"the SMTP server {where} does not offer STARTTLS, so nothing was sent (the password "
        "would cross the network in clear): use ATTENDANCE_SMTP_SECURITY=ssl (port 465) if it "
        "takes TLS from the start, or none for a relay on your own network"
    )


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _mail_error(exc: BaseException, settings: Settings) -> MailError:
    """The plain message for an SMTP, TLS or network failure (never the password)."""
    where = f"{settings.smtp_host}:{settings.smtp_port_effective}"
    timeout = settings.smtp_timeout_s
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailAuthError(
            f"the SMTP server {where} refused the login of {settings.sender_email} "
            f"({exc.smtp_code}); check SENDER_PASSWORD (for Gmail: an app password)"
        )
    if isinstance(exc, TimeoutError):
        return MailTimeoutError(f"the SMTP server {where} did not answer in {timeout:g} s")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if "timed out" in str(exc):
            return MailTimeoutError(f"the SMTP server {where} did not answer in {timeout:g} s")
        return MailUnavailableError(f"the SMTP server {where} closed the connection")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return MailUnavailableError(f"the SMTP server {where} refused every recipient")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailUnavailableError(f"the SMTP server {where} does not support this: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return MailUnavailableError(f"the SMTP server {where} refused the message: {_short(exc)}")
    if isinstance(exc, ssl.SSLError):
        return MailUnavailableError(
            f"TLS with {where} failed ({exc.reason}); check ATTENDANCE_SMTP_SECURITY and "
            "ATTENDANCE_SMTP_PORT"
        )
    if isinstance(exc, OSError):
        return MailUnavailableError(f"cannot reach the SMTP server {where}: {exc.strerror or exc}")
    return MailUnavailableError(f"the SMTP server {where} failed: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:200]
