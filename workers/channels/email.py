"""Email over SMTP (aiosmtplib): one multipart text + HTML message per alert.

`ssl` is implicit TLS; `starttls` None upgrades when the server offers it, True requires it,
False never upgrades. SMTP 4xx replies, timeouts and connection errors are retryable; 5xx replies
are permanent. The Message-ID comes from the alert id, so a retried alert is one message.
"""

from __future__ import annotations

import aiosmtplib
import httpx
import structlog

from monitor.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.settings import EmailChannelSettings, WebhookChannelSettings
from workers.notices import OperatorNotice, notice_email
from workers.render import Alert, email_message

log = structlog.get_logger("livewatch.email")


class EmailChannel:
    """Send each alert as an email to the channel's recipients."""

    def __init__(self, settings: EmailChannelSettings) -> None:
        self.name = settings.name
        self.settings = settings

    @classmethod
    def build(cls, settings: WebhookChannelSettings | EmailChannelSettings,
              http_client: httpx.AsyncClient) -> EmailChannel:
        """Registry constructor (see `workers.channels.build_channel`); needs no HTTP client."""
        if not isinstance(settings, EmailChannelSettings):
            raise TypeError(f"channel {settings.name!r} is not an email channel")
        return cls(settings)

    def _fail(self, reason: str) -> str:
        smtp = self.settings.smtp
        if smtp.password is not None and smtp.password.get_secret_value():
            reason = reason.replace(smtp.password.get_secret_value(), "***")
        return f"email {self.name} ({smtp.host}:{smtp.port}): {reason}"

    async def send(self, alert: Alert | OperatorNotice) -> None:
        """Hand the message to the SMTP server; raise a DeliveryError if it was not accepted."""
        smtp = self.settings.smtp
        message = (notice_email(alert, self.settings) if isinstance(alert, OperatorNotice)
                   else email_message(alert, self.settings))
        password = smtp.password.get_secret_value() if smtp.password is not None else None
        try:
            refused, _ = await aiosmtplib.send(
                message, hostname=smtp.host, port=smtp.port, username=smtp.username,
                password=password, use_tls=smtp.ssl, start_tls=smtp.starttls,
                timeout=smtp.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = self._fail("all recipients refused: " + ", ".join(
                f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients))
            if any(400 <= code < 500 for code in codes):
                raise RetryableDeliveryError(reason) from exc
            raise PermanentDeliveryError(reason) from exc
        except aiosmtplib.SMTPResponseException as exc:
            reason = self._fail(f"{type(exc).__name__}: {exc.code} {exc.message}")
            if 400 <= exc.code < 500:
                raise RetryableDeliveryError(reason) from exc
            if 500 <= exc.code < 600:
                raise PermanentDeliveryError(reason) from exc
            raise RetryableDeliveryError(reason) from exc  # odd code: a broken exchange
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            raise RetryableDeliveryError(
                self._fail(f"timed out after {smtp.timeout:g}s ({type(exc).__name__})")) from exc
        except OSError as exc:  # connection refused/reset, disconnected, TLS failures
            raise RetryableDeliveryError(self._fail(f"{type(exc).__name__}: {exc}")) from exc
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH required but not offered
            raise PermanentDeliveryError(self._fail(f"{type(exc).__name__}: {exc}")) from exc
        if refused:  # accepted for some recipients: a retry would duplicate it for the others
            await log.awarning("email refused for some recipients", channel=self.name,
                               alert=alert.id, refused=sorted(refused))

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP connection."""
