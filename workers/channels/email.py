"""Email over SMTP (aiosmtplib): one multipart text + HTML message per alert, notice or digest.

`ssl` is implicit TLS; `starttls` None upgrades when the server offers it, True requires it,
False never upgrades. SMTP 4xx replies, timeouts and connection errors are retryable; 5xx replies
are permanent. The Message-ID comes from the item's id, so a retried alert is one message; alert
emails of one feed on one (UTC) day share a thread (`workers.render.alert.thread_root`).
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import structlog

from monitor.config.models import EmailChannelSettings
from monitor.core.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.core.redaction import redact
from workers.channels.base import FromSettings
from workers.outbox.codec import Deliverable, Digest
from workers.render.alert import email_message
from workers.render.digest import digest_email
from workers.render.notices import OperatorNotice, notice_email

log = structlog.get_logger("livewatch.email")


def message_for(item: Deliverable, settings: EmailChannelSettings) -> EmailMessage:
    """The email for an alert, an operator notice or a digest."""
    if isinstance(item, OperatorNotice):
        return notice_email(item, settings)
    if isinstance(item, Digest):
        return digest_email(item, settings)
    return email_message(item, settings)


class EmailChannel(FromSettings[EmailChannelSettings]):
    """Send each alert (notice, digest) as an email to the channel's recipients."""

    settings_class = EmailChannelSettings

    def _fail(self, reason: str) -> str:
        smtp = self.settings.smtp
        hidden = {smtp.password.get_secret_value(): "***"} if smtp.password is not None else {}
        return f"email {self.name} ({smtp.host}:{smtp.port}): {redact(reason, hidden)}"

    async def send(self, item: Deliverable) -> None:
        """Hand the message to the SMTP server; raise a DeliveryError if it was not accepted."""
        smtp = self.settings.smtp
        message = message_for(item, self.settings)
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
            log.warning("email refused for some recipients", channel=self.name,
                        alert=item.id, refused=sorted(refused))

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP connection."""
