"""Apprise (https://github.com/caronc/apprise): one channel notifying any of the services Apprise
supports through its URLs (`tgram://…`, `mailto://…`, `ntfys://…`, `json://…`).

Apprise is synchronous, so `notify` runs in a worker thread bounded by the channel's `timeout`.
It reports only success or failure, so every failure (and a timeout) is retryable; an URL Apprise
cannot parse is a permanent error. With several URLs a retry notifies all of them again. The URLs
hold credentials: they are `SecretStr`, errors name only their scheme, and Apprise's own
DEBUG/INFO log lines (which can carry them) are not let through.

Messages are plain text (`body_format=text`): feed text is defused by `workers.render.chat` (no
`@everyone`, no auto-linked URLs) and the only link is the entry's permalink.
"""

from __future__ import annotations

import asyncio
import logging

import apprise
import httpx

from monitor.config.models import AppriseChannelSettings
from monitor.core.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.core.redaction import redact, url_shown
from workers.channels.base import FromSettings
from workers.outbox.codec import Deliverable
from workers.render.alert import Alert
from workers.render.chat import PLAIN, alert_text, digest_lines, marked, notice_text
from workers.render.digest import digest_summary, digest_window
from workers.render.notices import OperatorNotice

TITLE_MAX = 250
BODY_MAX = 4000


def apprise_message(item: Deliverable) -> tuple[str, str, str]:
    """(title, body, notify type) of the plain-text notification for `item`."""
    if isinstance(item, Alert):
        text = alert_text(item, PLAIN, title_limit=TITLE_MAX - 70, snippet_limit=1000)
        lines = [*text.snippets, "",
                 f"Rule: {text.rule} · Feed: {text.feed} · {text.event} · {text.detected}"]
        if text.link:
            lines.append(text.link)
        return f"{text.rule}: {text.title}", "\n".join(lines), "info"
    if isinstance(item, OperatorNotice):
        headline, message = notice_text(item, PLAIN, BODY_MAX)
        return headline, message, "warning"
    body = "\n".join([digest_window(item), "", *digest_lines(item, PLAIN, BODY_MAX - 100)])
    return marked(digest_summary(item), (), PLAIN, TITLE_MAX), body, "info"


class AppriseChannel(FromSettings[AppriseChannelSettings]):
    """Notify the channel's Apprise URLs with each alert, notice or digest."""

    settings_class = AppriseChannelSettings

    def __init__(self, settings: AppriseChannelSettings,
                 http_client: httpx.AsyncClient | None = None) -> None:
        super().__init__(settings)
        self._urls = [url.get_secret_value() for url in settings.urls]
        self._hidden = {url: url_shown(url, "scheme") for url in self._urls}
        logging.getLogger("apprise").setLevel(logging.WARNING)

    def _fail(self, reason: str) -> str:
        return f"apprise {self.name}: {redact(reason, self._hidden)}"

    def _notify(self, title: str, body: str, kind: str) -> bool:
        """Blocking: one Apprise object per notification (nothing shared between threads)."""
        notifier = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
        for index, url in enumerate(self._urls):
            if not notifier.add(url):
                raise PermanentDeliveryError(self._fail(
                    f"urls[{index}] ({url_shown(url, 'scheme')}) is not a URL Apprise understands"))
        notify_type = apprise.NotifyType.WARNING if kind == "warning" else apprise.NotifyType.INFO
        return bool(notifier.notify(body=body, title=title, notify_type=notify_type,
                                    body_format=apprise.NotifyFormat.TEXT))

    async def send(self, item: Deliverable) -> None:
        """Notify every URL; raise a `DeliveryError` unless Apprise reports success."""
        title, body, kind = apprise_message(item)
        timeout = self.settings.timeout
        try:
            ok = await asyncio.wait_for(asyncio.to_thread(self._notify, title, body, kind),
                                        timeout)
        except TimeoutError as exc:
            raise RetryableDeliveryError(self._fail(f"timed out after {timeout:g}s")) from exc
        except PermanentDeliveryError:
            raise
        except Exception as exc:  # a plugin bug: wrapped at the boundary
            raise RetryableDeliveryError(self._fail(type(exc).__name__)) from exc
        if not ok:
            raise RetryableDeliveryError(self._fail(
                "the notification failed (Apprise gives no reason; see its warnings)"))

    async def aclose(self) -> None:
        """Nothing to release: each send builds its own Apprise object."""
