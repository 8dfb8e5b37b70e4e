"""Slack, Discord and Teams channels against a real local receiver: payload shapes, escaping of
hostile feed text (issue 8), limits, and HTTP status classification."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alerts import (
    HOSTILE,
    PERMALINK,
    URL,
    build_alert,
    build_notice,
    strings,
)
from pydantic import TypeAdapter
from servers import Received, WebhookReceiver, recording

from monitor.config.loader import parse_config
from monitor.config.models import AnyChannelSettings, ChannelSettings
from monitor.config.values import env_var_names
from monitor.core.errors import (
    ChannelGoneError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from monitor.ops.embedded import free_port
from workers.channels import (
    Channel,
    DiscordChannel,
    SlackChannel,
    TeamsChannel,
    build_channel,
)
from workers.render.chat import MARKDOWN, PLAIN, SLACK, ZWSP, marked

KINDS = ["slack", "discord", "teams"]
TOKEN = "T000/B000/XXXXsecretXXXX"
ADAPTER: TypeAdapter[AnyChannelSettings] = TypeAdapter(ChannelSettings)


def settings(kind: str, url: str, **extra: Any) -> AnyChannelSettings:
    return ADAPTER.validate_python({"name": f"{kind}-desk", "type": kind, "url": url, **extra})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def deliver(kind: str, receiver: WebhookReceiver, http: httpx.AsyncClient,
                  item: Any = None, **extra: Any) -> tuple[Received, Any]:
    channel = build_channel(settings(kind, receiver.url(f"/hooks/{TOKEN}"), **extra), http)
    await channel.send(item if item is not None else build_alert())
    receiver.wait_for(lambda got: len(got) == 1)
    (request,) = receiver.received
    assert request.path == f"/hooks/{TOKEN}"
    assert request.headers["content-type"] == "application/json"
    return request, request.json()


def unescaped(text: str, specials: str = "*_~`|[]()<>#") -> list[str]:
    """Markdown specials in `text` that no backslash escapes."""
    found, escaped = [], False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in specials:
            found.append(char)
    return found


def assert_harmless(payload: Any, kind: str = "") -> None:
    """No mention, script, masked link or URL other than the permalink anywhere. (Slack's
    mrkdwn has no `[label](url)` links, so there the brackets are only text.)"""
    masked = () if kind == "slack" else ("[click](",)
    for text in strings(payload):
        for needle in ("<!channel>", "<!here>", "@everyone", "@here", "<@U123ABC>",
                       "<@&987654>", "<#C42>", "<script>", "evil.example", "<https://evil",
                       *masked):
            assert needle not in text, (needle, text)
        for url in URL.findall(text):
            assert url.startswith(PERMALINK), (url, text)


# --- shapes -----------------------------------------------------------------------------------

async def test_slack_payload_shape(webhook_receiver: WebhookReceiver,
                                   http: httpx.AsyncClient) -> None:
    _, body = await deliver("slack", webhook_receiver, http, username="livewatch")
    assert body["text"] == "coalition: Summit live: leaders arrive"
    assert body["username"] == "livewatch" and body["unfurl_links"] is False
    title, snippet, context = body["blocks"]
    assert title == {"type": "section", "text": {
        "type": "mrkdwn", "verbatim": True,
        "text": f"*<{PERMALINK}|Summit live: leaders arrive>*"}}
    assert snippet["text"]["text"] == ("> The PM said the *coalition of the willing* would "
                                       "meet at noon.")
    assert snippet["text"]["verbatim"] is True
    facts = context["elements"][0]["text"]
    assert context["type"] == "context" and context["elements"][0]["verbatim"] is True
    assert "Rule *coalition*" in facts and "Feed *summit-live*" in facts
    assert "Detected 2026-03-02 14:07:12 UTC" in facts


async def test_discord_payload_shape(webhook_receiver: WebhookReceiver,
                                     http: httpx.AsyncClient) -> None:
    _, body = await deliver("discord", webhook_receiver, http, username="livewatch")
    assert body["allowed_mentions"] == {"parse": []}
    assert body["username"] == "livewatch"
    assert body["content"] == "**coalition** matched in **summit-live**"
    (embed,) = body["embeds"]
    assert embed["title"] == "Summit live: leaders arrive" and embed["url"] == PERMALINK
    assert embed["description"] == ("> The PM said the **coalition of the willing** would meet "
                                    "at noon.")
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Rule": "coalition", "Feed": "summit-live", "Matched": "coalition of the willing"}
    assert embed["timestamp"] == "2026-03-02T14:07:12+00:00"


async def test_teams_payload_shape(webhook_receiver: WebhookReceiver,
                                   http: httpx.AsyncClient) -> None:
    _, body = await deliver("teams", webhook_receiver, http)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, snippet, facts = card["body"]
    assert title["text"] == f"[Summit live: leaders arrive]({PERMALINK})"
    assert snippet["text"] == "The PM said the **coalition of the willing** would meet at noon."
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Rule": "coalition", "Feed": "summit-live", "Matched": "coalition of the willing",
        "Event": "new entry", "Detected": "2026-03-02 14:07:12 UTC"}
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open entry",
                                "url": PERMALINK}]


@pytest.mark.parametrize("kind", KINDS)
async def test_notice_is_delivered(kind: str, webhook_receiver: WebhookReceiver,
                                   http: httpx.AsyncClient) -> None:
    _, body = await deliver(kind, webhook_receiver, http,
                            build_notice(message="failing: <!channel> @here see https://x.example"))
    text = json.dumps(body, ensure_ascii=False)
    assert "summit-live" in text and "failing" in text
    assert_harmless(body)
    assert "x.example" not in text


@pytest.mark.parametrize("kind", KINDS)
async def test_no_permalink_means_no_link(kind: str, webhook_receiver: WebhookReceiver,
                                          http: httpx.AsyncClient) -> None:
    _, body = await deliver(kind, webhook_receiver, http,
                            build_alert(url="javascript:alert(1)"))
    text = json.dumps(body)
    assert "javascript" not in text
    assert not [u for s in strings(body) for u in URL.findall(s)]


# --- hostile text -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_entry_text_stays_text(kind: str, webhook_receiver: WebhookReceiver,
                                             http: httpx.AsyncClient) -> None:
    alert = build_alert(text=HOSTILE, title="**Live** <!channel> [x](https://evil.example) @here")
    _, body = await deliver(kind, webhook_receiver, http, alert)
    assert_harmless(body, kind)
    text = json.dumps(body, ensure_ascii=False)
    assert PERMALINK in text  # the one link survives


FRAGMENTS = ["<!channel>", "<!here>", "@everyone", "@here", "<@U123ABC>", "<@&987654>", "<#C42>",
             "[click](javascript:alert(1))", "<script>alert(1)</script>", "https://evil.example/x",
             "evil.example", "<https://evil.example|masked>", "[x](<https://evil.example>)"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fragment", FRAGMENTS)
async def test_each_hostile_fragment_is_defused(kind: str, fragment: str,
                                                webhook_receiver: WebhookReceiver,
                                                http: httpx.AsyncClient) -> None:
    alert = build_alert(text=f"{fragment} the coalition of the willing {fragment}",
                        title=f"Live {fragment}")
    _, body = await deliver(kind, webhook_receiver, http, alert)
    assert_harmless(body, kind)


async def test_slack_hostile_snippet_has_only_our_markup(webhook_receiver: WebhookReceiver,
                                                         http: httpx.AsyncClient) -> None:
    _, body = await deliver("slack", webhook_receiver, http, build_alert(text=HOSTILE))
    title, snippet, _ = body["blocks"]
    text = snippet["text"]["text"]
    assert text.startswith("> ")
    rest = text[2:].replace("*coalition of the willing*", "")
    for char in "*_~`<>":
        assert char not in rest, (char, rest)
    assert "&lt;script&gt;" in rest and "&lt;https:" in rest
    assert title["text"]["text"] == f"*<{PERMALINK}|Summit live: leaders arrive>*"


@pytest.mark.parametrize("kind", ["discord", "teams"])
async def test_markdown_hostile_snippet_has_only_our_markup(
        kind: str, webhook_receiver: WebhookReceiver, http: httpx.AsyncClient) -> None:
    text = ("[click](javascript:alert(1)) **bold** ||spoiler|| the coalition of the willing "
            "<@&987654> `code` ~~gone~~ __under__ # heading")
    _, body = await deliver(kind, webhook_receiver, http, build_alert(text=text))
    if kind == "discord":
        snippet = body["embeds"][0]["description"].removeprefix("> ")
    else:
        snippet = body["attachments"][0]["content"]["body"][1]["text"]
    assert unescaped(snippet.replace("**coalition of the willing**", "")) == []
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in snippet
    assert "\\*\\*bold\\*\\*" in snippet and "\\|\\|spoiler\\|\\|" in snippet


def test_defuse_breaks_mentions_and_autolinks() -> None:
    assert PLAIN.escape("@everyone") == f"@{ZWSP}everyone"
    assert PLAIN.escape("https://evil.example/x") == f"https:{ZWSP}//evil{ZWSP}.example/x"
    assert PLAIN.escape("news.bbc.co.uk") == f"news{ZWSP}.bbc{ZWSP}.co{ZWSP}.uk"
    assert PLAIN.escape("costs £1.5bn, e.g. 3.14") == "costs £1.5bn, e.g. 3.14"
    assert PLAIN.escape("mail desk@example.org") == f"mail desk@{ZWSP}example{ZWSP}.org"


def test_markdown_escapes_line_start_markers() -> None:
    assert marked("- item", (), MARKDOWN, None) == "\\- item"
    assert marked("12. item", (), MARKDOWN, None) == "12\\. item"
    assert marked("# big", (), MARKDOWN, None) == "\\# big"
    assert marked("a - b 3. c", (), MARKDOWN, None) == "a - b 3. c"


def test_marked_cuts_within_the_limit_and_closes_bold() -> None:
    text = "x" * 20 + " coalition of the willing " + "y" * 50
    spans = [(21, 45)]
    for limit in range(5, 100):
        for dialect in (SLACK, MARKDOWN):
            out = marked(text, spans, dialect, limit)
            assert len(out) <= limit
            assert out.count(dialect.bold_open) % 2 == 0 if dialect is SLACK else \
                out.count("**") % 2 == 0
    assert marked("a&b" * 10, (), SLACK, 12) == "a&amp;ba…"


# --- limits -----------------------------------------------------------------------------------

async def test_long_entries_fit_each_service(webhook_receiver: WebhookReceiver,
                                             http: httpx.AsyncClient) -> None:
    text = " ".join(["<&> coalition of the willing " * 3 + "filler " * 40] * 30)
    alert = build_alert(text=text, title="<&>" * 400)
    slack = build_channel(settings("slack", webhook_receiver.url("/s")), http)
    discord = build_channel(settings("discord", webhook_receiver.url("/d")), http)
    teams = build_channel(settings("teams", webhook_receiver.url("/t")), http)
    for channel in (slack, discord, teams):
        await channel.send(alert)
    webhook_receiver.wait_for(lambda got: len(got) == 3)
    by_path = {r.path: r for r in webhook_receiver.received}
    blocks = by_path["/s"].json()["blocks"]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert len(by_path["/s"].json()["text"]) <= 3000
    discord_body = by_path["/d"].json()
    (embed,) = discord_body["embeds"]
    assert len(discord_body["content"]) <= 2000 and len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    embed_total = (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
                   + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"]))
    assert embed_total <= 6000
    assert len(by_path["/t"].body) < 28_000


# --- status classification --------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "headers", "error", "retry_after"), [
    (500, {}, RetryableDeliveryError, None),
    (503, {"Retry-After": "12"}, RetryableDeliveryError, 12.0),
    (429, {"Retry-After": "7"}, RetryableDeliveryError, 7.0),
    (408, {}, RetryableDeliveryError, None),
    (410, {}, ChannelGoneError, None),
    (400, {}, PermanentDeliveryError, None),
    (404, {}, ChannelGoneError, None),  # a deleted chat webhook
    (403, {}, PermanentDeliveryError, None),
    (302, {"Location": "https://elsewhere.example.org/"}, PermanentDeliveryError, None),
])
async def test_status_classification(kind: str, status: int, headers: dict[str, str],
                                     error: type[DeliveryError], retry_after: float | None,
                                     webhook_receiver: WebhookReceiver,
                                     http: httpx.AsyncClient) -> None:
    seen = recording(webhook_receiver, [(status, headers)])
    channel = build_channel(settings(kind, webhook_receiver.url(f"/hooks/{TOKEN}")), http)
    with pytest.raises(DeliveryError) as info:
        await channel.send(build_alert())
    assert type(info.value) is error
    assert info.value.retry_after == retry_after
    message = str(info.value)
    assert str(status) in message and f"{kind}-desk" in message and "127.0.0.1" in message
    assert "secret" not in message and "hooks" not in message
    assert len(seen) == 1


async def test_success_statuses(webhook_receiver: WebhookReceiver,
                                http: httpx.AsyncClient) -> None:
    recording(webhook_receiver, [(204, {}), (202, {})])
    await build_channel(settings("discord", webhook_receiver.url("/d")), http).send(build_alert())
    await build_channel(settings("teams", webhook_receiver.url("/t")), http).send(build_alert())


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused_is_retryable(kind: str, http: httpx.AsyncClient) -> None:
    channel = build_channel(settings(kind, f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"), http)
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(build_alert())
    assert TOKEN not in str(info.value) and "secret" not in str(info.value)


async def test_timeout_is_retryable(stalled_receiver: WebhookReceiver,
                                    http: httpx.AsyncClient) -> None:
    channel = build_channel(settings("slack", stalled_receiver.url("/s"), timeout=0.3), http)
    with pytest.raises(RetryableDeliveryError) as info:
        await channel.send(build_alert())
    assert "timed out" in info.value.reason


# --- settings and registry --------------------------------------------------------------------

async def test_registry_builds_chat_channels(http: httpx.AsyncClient) -> None:
    built: list[Channel] = [build_channel(settings(kind, "https://hooks.example.org/x"), http)
                            for kind in KINDS]
    assert [type(c) for c in built] == [SlackChannel, DiscordChannel, TeamsChannel]
    for channel in built:
        await channel.aclose()
    with pytest.raises(TypeError):
        SlackChannel.build(settings("discord", "https://hooks.example.org/x"), http)


def test_chat_settings_hide_the_url_path() -> None:
    slack = settings("slack", f"https://hooks.slack.com/services/{TOKEN}")
    assert slack.target == "https://hooks.slack.com/…"
    with pytest.raises(ValueError, match="http"):
        settings("discord", "ftp://discord.example/x")
    with pytest.raises(ValueError, match="extra"):
        settings("teams", "https://x.example/y", username="no")


# --- documented examples ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLES = {"LW_TELEGRAM_URL": "tgram://123456:ABCDEF/987654"}


def _env(text: str) -> dict[str, str]:
    return {name: ENV_EXAMPLES.get(name, f"https://hooks.example.org/{name.lower()}")
            for name in env_var_names(text)}


def _channels_yaml(path: Path, heading: str) -> list[str]:
    """The ```yaml blocks of `path` between `heading` and the next heading of its level."""
    text = path.read_text(encoding="utf-8")
    start = text.index(heading + "\n") + len(heading)
    depth = len(heading.split(" ")[0])
    following = re.compile(rf"\n#{{1,{depth}}} ").search(text, start)
    end = following.start() if following else len(text)
    return re.findall(r"```yaml\n(.*?)```", text[start:end], re.DOTALL)


@pytest.mark.parametrize(("doc", "heading"), [("README.md", "### Channels"),
                                              ("docs/configuration.md", "### `type: apprise`")])
def test_documented_channel_examples_validate(doc: str, heading: str) -> None:
    (block,) = _channels_yaml(REPO / doc, heading)
    config = parse_config(block, doc, env=_env(block))
    assert {"slack", "discord", "teams", "apprise"} <= {c.type for c in config.channels}


def test_example_config_commented_channels_validate() -> None:
    lines = (REPO / "config" / "example.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "More channel types" in line) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  # "):
            break
        block.append("  " + line[4:])
    text = "channels:\n" + "\n".join(block) + "\n"
    config = parse_config(text, "example.yaml", env=_env(text))
    assert [c.type for c in config.channels] == ["slack", "discord", "teams", "apprise"]
