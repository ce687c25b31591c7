"""Sending an e-mail through the operator's SMTP server (``LARIBA_SMTP_*``)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from lariba.core.settings import Settings

SMTP_TIMEOUT_SECONDS = 20


def deliver(settings: Settings, message: EmailMessage) -> None:
    """Sends ``message`` (blocking: run it in a thread). TLS from the start with
    ``smtp_tls``, else STARTTLS when ``smtp_starttls``; logs in when a user is set.
    Raises OSError or smtplib.SMTPException when the server fails."""
    assert settings.smtp_host is not None
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_tls:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_tls:
            smtp.starttls(context=context)
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)
