"""Security pieces as pure or local tests: the address classifier, fetch limits against the local
FeedServer, parser safety (what expat and feedparser actually do), output escaping, YAML and
secrets. Network: only 127.0.0.1 is ever connected to."""

from __future__ import annotations

import asyncio
import gzip
import os
import pyexpat
import re
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
import yarl
from conftest import SmtpServer
from feeds import Item, rss
from servers import FeedServer, WebhookReceiver
from service import Service

from monitor.config.loader import parse_config
from monitor.config.models import EmailChannelSettings, RuleSettings
from monitor.config.secrets import env_values, literal_secret_fields, world_readable_secrets
from monitor.core.errors import ConfigError, FetchError, ParseError, hosts_only
from monitor.core.redaction import redact
from monitor.fetch.client import Fetcher
from monitor.fetch.netpolicy import NetworkPolicy, blocked_reason
from monitor.ops.embedded import EmbeddedRedis
from monitor.sources import parse_document
from monitor.sources.guards import html_depth
from workers.match.matcher import Matcher
from workers.render.alert import email_message, make_alert, webhook_payload

MB = 1024 * 1024
UA = "livewatch-test/1.0"


# --- the address classifier (never connects) -----------------------------------------------------

@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"), ("fe80::1", "link-local"), ("fd00::1", "unique local (private)"),
    ("fc12:3456::1", "unique local (private)"), ("64:ff9b::a9fe:a9fe", "NAT64"),
    ("64:ff9b::808:808", "NAT64"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"), ("::10.0.0.1", "private"), ("255.255.255.255", "reserved"),
    ("192.0.2.10", "documentation"),
    ("2001:0:4136:e378:8000:ffff:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
    ("2001:0:a00:1:8000:ffff:f7f7:f7f7", "private"),  # Teredo via server 10.0.0.1
])
def test_blocked_addresses(address: str, why: str) -> None:
    assert blocked_reason(address) == why


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255",
                                     "100.128.0.1", "172.32.0.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "2002:808:808::",
                                     "2001:0:4136:e378:8000:ffff:f7f7:f7f7"])
def test_public_addresses(address: str) -> None:
    assert blocked_reason(address) is None


def test_policy_checks_every_address_and_honours_allow_hosts() -> None:
    policy = NetworkPolicy.of(False, ["Feeds.Internal.", "[::1]"])
    with pytest.raises(FetchError, match=r"blocked private address: evil\.example "
                                         r"\(169\.254\.169\.254\) is link-local"):
        policy.check("evil.example", ["93.184.216.34", "169.254.169.254"])
    policy.check("good.example", ["93.184.216.34", "2606:4700:4700::1111"])
    policy.check("feeds.internal", ["10.0.0.5"])
    policy.check("::1", ["::1"])
    NetworkPolicy.of(True).check("anything", ["127.0.0.1"])


# --- fetch limits ------------------------------------------------------------------------------

@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(user_agent=UA, max_concurrency=4, max_redirects=3) as f:
        yield f


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip level 9, compressed in 1 MB pieces (never all in memory)."""
    compress = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    return b"".join([*(compress.compress(zeros) for _ in range(size // MB)), compress.flush()])


async def test_gzip_bomb_stops_at_the_cap_with_bounded_memory(feed_server: FeedServer,
                                                              fetcher: Fetcher) -> None:
    bomb = gzip_bomb(64 * MB)  # the 1 GB bomb is in test_hostile
    feed_server.set("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match=f"response body exceeds {4 * MB} bytes"):
            await fetcher.fetch(feed_server.url("/bomb"), timeout=10, max_body=4 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB + 2 * MB  # the decoded body (at most cap + 1) and a step or two


@pytest.mark.parametrize("encode", [
    lambda b: zlib.compress(b), lambda b: zlib.compress(b)[2:-4],  # zlib and raw deflate
    lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:]),  # two gzip members
])
async def test_other_encodings_decode(feed_server: FeedServer, fetcher: Fetcher,
                                      encode: object) -> None:
    body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
    coding = "gzip" if encode(body)[:2] == b"\x1f\x8b" else "deflate"  # type: ignore[operator]
    feed_server.set("/e", encode(body), headers={"Content-Encoding": coding})  # type: ignore[operator]
    assert (await fetcher.fetch(feed_server.url("/e"), timeout=5, max_body=MB)).body == body


async def test_unsupported_encoding_and_truncated_gzip(feed_server: FeedServer,
                                                       fetcher: Fetcher) -> None:
    feed_server.set("/br", b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"})
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'"):
        await fetcher.fetch(feed_server.url("/br"), timeout=5, max_body=MB)
    feed_server.set("/cut", gzip.compress(b"x" * 5000)[:-20], headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="could not decode response body: truncated gzip"):
        await fetcher.fetch(feed_server.url("/cut"), timeout=5, max_body=MB)


async def test_one_byte_a_second_hits_the_total_deadline(feed_server: FeedServer,
                                                         fetcher: Fetcher) -> None:
    feed_server.set("/drip", b"<rss>" + b" " * 100, trickle=1.0, trickle_bytes=1,
                    headers={"Content-Encoding": "identity"})
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^timed out after 1\.5s$"):
        await fetcher.fetch(feed_server.url("/drip"), timeout=1.5, max_body=MB)
    assert time.monotonic() - started < 2.5


async def test_redirect_limit_and_loop(feed_server: FeedServer, fetcher: Fetcher) -> None:
    for n in range(6):
        feed_server.set(f"/r{n}", "", status=302, headers={"Location": f"/r{n + 1}"})
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        await fetcher.fetch(feed_server.url("/r0"), timeout=5, max_body=MB)
    feed_server.set("/self", "", status=301, headers={"Location": "/self"})
    with pytest.raises(FetchError, match=r"redirect loop \(1 redirect back to a URL already "
                       r"fetched\): http://127\.0\.0\.1:\d+ -> http://127\.0\.0\.1:\d+$"):
        await fetcher.fetch(feed_server.url("/self"), timeout=5, max_body=MB)


#: Redirect targets whose path holds what ends a URL in prose (`)`, `'`, `"`) before a query.
AWKWARD = ["/p)?k=SECRET-PAREN", "/p'?k=SECRET-QUOTE", '/p"?k=SECRET-DQUOTE',
           "/p?k=SECRET-TAIL)x", "/p;k=SECRET-PARAM", "/p\\q?k=SECRET-BACKSLASH"]


@pytest.mark.parametrize("path", AWKWARD)
async def test_a_redirect_loop_names_hosts_only(feed_server: FeedServer, fetcher: Fetcher,
                                                path: str) -> None:
    feed_server.set("/start?k=SECRET-START", "", status=302, headers={"Location": path})
    sent = str(yarl.URL(feed_server.url(path)).raw_path_qs)  # the path as the client sends it
    feed_server.set(sent, "", status=302, headers={"Location": path})
    with pytest.raises(FetchError) as failed:
        await fetcher.fetch(feed_server.url("/start?k=SECRET-START"), timeout=5, max_body=MB)
    assert re.fullmatch(r"redirect loop \(1 redirect back to a URL already fetched\): "
                        r"http://127\.0\.0\.1:\d+ -> http://127\.0\.0\.1:\d+", str(failed.value))


async def test_fetch_errors_name_hosts_only(feed_server: FeedServer, fetcher: Fetcher) -> None:
    """A secret in the URL (query, userinfo) or in a redirect target's: the error of a timeout,
    an HTTP error after a redirect, a response aiohttp cannot read (its error carries the URL)
    and a redirect to another scheme never holds it."""
    port = feed_server.httpd.server_address[1]
    feed_server.set("/slow?k=SECRET-1", "<rss/>", delay=3)
    feed_server.set("/hop?k=SECRET-2", "", status=302,
                    headers={"Location": "/fail?k=SECRET-3#SECRET-4"})
    feed_server.set("/fail?k=SECRET-3", "oops", status=500)
    feed_server.set("/ftp?k=SECRET-5", "", status=302,
                    headers={"Location": "ftp://SECRET-6:SECRET-7@example.org/x?k=SECRET-8"})

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 2x0 OK\r\n\r\n")  # aiohttp: ClientResponseError(url=...)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    bad = server.sockets[0].getsockname()[1]
    secret_user = f"http://SECRET-9:SECRET-10@127.0.0.1:{port}"
    cases = [(f"{secret_user}/slow?k=SECRET-1", r"timed out after 1s"),
             (feed_server.url("/hop?k=SECRET-2"), r"HTTP 500"),
             (feed_server.url("/ftp?k=SECRET-5"),
              r"invalid URL \(scheme 'ftp', host 'example\.org'\): not an absolute http\(s\) URL"),
             (f"http://127.0.0.1:{bad}/x?k=SECRET-11", r"request failed: ClientResponseError: "
                                                      r".*url='http://127\.0\.0\.1:\d+")]
    try:
        for url, expected in cases:
            with pytest.raises(FetchError) as failed:
                await fetcher.fetch(url, timeout=1, max_body=MB)
            message = str(failed.value)
            assert re.fullmatch(expected, message, re.DOTALL), message
            assert "SECRET" not in message, message
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("text", "shown"), [
    ("loop: http://h.example/p)?k=S -> https://u:p@h.example:8443/q'?k=S", "loop: "
     "http://h.example -> https://h.example:8443"),
    ("url='http://h.example/p?k=S', x", "url='http://h.example x"),
    ("http://a@b@h.example/?k=S", "http://h.example"),
    ("gopher://h.example/x?k=S and FEED://h.example/?k=S", "gopher://h.example and FEED://h.example"),
    ("no URL here: HTTP 503", "no URL here: HTTP 503"),
])
def test_hosts_only_cuts_every_url_to_its_host(text: str, shown: str) -> None:
    assert hosts_only(text) == shown
    assert str(FetchError(text)) == shown


async def test_policy_blocks_loopback_and_redirects_to_it(feed_server: FeedServer) -> None:
    feed_server.set("/feed", "<rss/>")
    async with Fetcher(user_agent=UA, policy=NetworkPolicy.of(False)) as blocked:
        with pytest.raises(FetchError, match=r"^blocked private address: 127\.0\.0\.1 is "
                                             "loopback"):
            await blocked.fetch(feed_server.url("/feed"), timeout=5, max_body=MB)
    assert feed_server.count("/feed") == 0
    port = feed_server.httpd.server_address[1]
    feed_server.set("/hop", "", status=302, headers={"Location": f"http://localhost:{port}/feed"})
    async with Fetcher(user_agent=UA, policy=NetworkPolicy.of(False, ["127.0.0.1"])) as hop:
        with pytest.raises(FetchError, match=r"^blocked private address: localhost \(.+\) is "
                                             "loopback"):
            await hop.fetch(feed_server.url("/hop"), timeout=5, max_body=MB)
        assert (await hop.fetch(feed_server.url("/feed"), timeout=5, max_body=MB)).body
    assert feed_server.count("/hop") == 1 and feed_server.count("/feed") == 1


# --- parser safety: what the installed expat and feedparser do -----------------------------------

LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10))


def with_dtd(dtd: str, text: str, root: str = "rss") -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE {root} [{dtd}]>\n<rss version="2.0"><channel>'
            f"<title>t</title><item><guid>g1</guid><title>T</title>"
            f"<description>{text}</description></item></channel></rss>").encode()


def test_expat_refuses_billion_laughs_itself() -> None:
    assert pyexpat.version_info >= (2, 4, 0)  # amplification limits (billion laughs)
    with pytest.raises(pyexpat.ExpatError, match="amplification"):
        pyexpat.ParserCreate().Parse(with_dtd(LAUGHS, "&lol9;"), True)


def test_feedparser_never_expands_or_reads_entities(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    marker.write_text("XXE-MARKER-7731")
    quadratic = with_dtd('<!ENTITY a "' + "A" * 20_000 + '">', "&a;" * 20_000)
    xxe = with_dtd(f'<!ENTITY x SYSTEM "file://{marker}">', "before &x; after")
    for body in (with_dtd(LAUGHS, "&lol9;"), quadratic, xxe):
        parsed = feedparser.parse(body)  # DTD entities dropped; references stay literal text
        summary = parsed.entries[0].summary
        assert "lollol" not in summary and "AAAA" not in summary
        assert "XXE-MARKER" not in summary and len(summary) <= 2 * len(body)


@pytest.mark.parametrize("root", ["rss", "feed"])
@pytest.mark.parametrize("dtd", [LAUGHS, '<!ENTITY a "' + "A" * 1000 + '">',
                                 '<!ENTITY x SYSTEM "file:///etc/passwd">',
                                 '<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;'])
def test_entity_declarations_are_refused(dtd: str, root: str) -> None:
    with pytest.raises(ParseError, match="XML entity declarations are not allowed"):
        parse_document("auto", with_dtd(dtd, "x", root), "https://example.org/", None)


def test_deep_nesting_fails_cleanly() -> None:
    deep_json = b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + \
        b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ParseError, match="JSON nested too deeply"):
        parse_document("auto", deep_json, "https://example.org/", None)
    deep_html = b"<html><body>" + b"<div>" * 100_000 + b"x" + b"</div>" * 100_000 + b"</body>"
    started = time.monotonic()
    with pytest.raises(ParseError, match="HTML nested more than 5000 elements deep"):
        parse_document("liveblog", deep_html, "https://example.org/", "text/html")
    assert time.monotonic() - started < 2  # lexbor would take ~30 s on it
    ld = b'<html><script type="application/ld+json">' + b"[" * 100_000 + b"</script></html>"
    with pytest.raises(ParseError, match=r"no schema\.org LiveBlogPosting"):
        parse_document("liveblog", ld, "https://example.org/", "text/html")


def test_html_depth_ignores_void_and_implicitly_closed_elements() -> None:
    page = "<html><body>" + "<p>para<br><img src=x>" * 20_000 + "<ul><li>a<li>b</ul></body>"
    assert html_depth(page, 10_000) <= 3


# --- output safety ----------------------------------------------------------------------------

HOSTILE_TITLE = "pwned\r\nBcc: victim@example.org\r\n\r\n<script>alert(1)</script>"
HOSTILE_HTML = ('<p>pwned <script>alert("x")</script><a href="javascript:alert(1)">click</a>'
                '<img src=x onerror="alert(2)"><a href="https://ok.example/">fine</a></p>')


def test_alert_email_and_webhook_carry_no_live_markup() -> None:
    document = parse_document("rss", (
        '<rss version="2.0"><channel><title>t</title><item><guid>h1</guid>'
        f"<title><![CDATA[{HOSTILE_TITLE}]]></title><link>javascript:alert(3)</link>"
        f"<description><![CDATA[{HOSTILE_HTML}]]></description></item></channel></rss>").encode(),
        "https://example.org/feed", None)
    (entry,) = document.entries
    from monitor.core.models import Event
    event = Event(kind="new", feed="f", feed_url="https://example.org/feed", entry=entry,
                  version=entry.version, detected_at=datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    rules = [RuleSettings(name="r", any=["pwned"], channels=["c"])]
    (match,) = Matcher(rules).match("f", entry.title, entry.text)
    channel = EmailChannelSettings.model_validate({
        "name": "c", "type": "email", "to": ["desk@example.org"], "from": "lw@example.org",
        "smtp": {"host": "127.0.0.1"}})
    message = email_message(make_alert(event, match, "c"), channel)
    raw = message.as_string()
    headers, _, _ = raw.partition("\n\n")
    assert message["Bcc"] is None and "\r" not in str(message["Subject"])
    assert not any(line.lower().startswith("bcc") for line in headers.splitlines())
    html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
    html_body = str(html_part.get_content())
    for bad in ("<script", "javascript:", "onerror=", "<img"):
        assert bad not in html_body.lower()
    assert "&lt;script&gt;" in html_body  # the plain-text title, shown as text
    # Webhook JSON is data: HTML content arrives as text without its markup; a plain-text title
    # keeps its literal characters (the receiver escapes it like any other string).
    payload = webhook_payload(make_alert(event, match, "c"))
    assert payload["entry"]["text"] == "pwned clickfine"


# --- YAML and secrets ----------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["!!python/object:os.system {}",
                                 '!!python/object/apply:os.system ["echo pwned"]',
                                 "!!python/name:os.system"])
def test_python_tags_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config(f"defaults: {tag}\n")


LITERAL = """channels:
  - {name: hook, type: webhook, url: "https://hooks.example.org/x", secret: "whsec_literal"}
  - name: mail
    type: email
    to: [desk@example.org]
    from: lw@example.org
    smtp: {host: smtp.example.org, username: lw, password: "${LW_PW}"}
"""


def test_literal_secret_warning_only_when_world_readable() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lw.yaml"
        path.write_text(LITERAL)
        os.chmod(path, 0o644)
        warning = world_readable_secrets(path)
        assert warning and "channels[0].secret" in warning and "644" in warning
        assert "smtp.password" not in warning and "whsec_literal" not in warning
        os.chmod(path, 0o640)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert world_readable_secrets(path) is None
        path.write_text(LITERAL.replace('"whsec_literal"', '"${LW_SECRET}"'))
        os.chmod(path, 0o644)
        assert world_readable_secrets(path) is None
    assert literal_secret_fields({"channels": [{"smtp": {"password": 1234}}]}) == [
        "channels[0].smtp.password"]
    assert literal_secret_fields({"channels": [
        {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
        {"type": "webhook", "url": "https://hooks.example.org/x"},
        {"type": "apprise", "urls": ["${LW_TG}", "mailto://u:p@example.org"]}]}) == [
        "channels[0].url", "channels[2].urls[1]"]
    assert literal_secret_fields({"redis": {"sentinel": {"password": "p", "sentinel_password":
                                                         "${LW_SENTINEL}"}}}) == [
        "redis.sentinel.password"]


def test_env_values_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "lw.yaml"
    path.write_text('url: "https://h.example/${TOKEN}?k=${KEY:-x}"\n')
    values = env_values(path, {"TOKEN": "tok-123456", "KEY": "12", "OTHER": "zzzzzz"})
    assert values == {"tok-123456": "${TOKEN}"}  # short values are not redacted
    assert redact("https://h.example/tok-123456", values) == "https://h.example/${TOKEN}"


# --- secrets never printed or logged (real subprocesses) ----------------------------------------

SECRET = "s3cr3t-Vv9QzX71-never-print-me"


def secret_config(feeds: FeedServer, hook_url: str, smtp_port: int, redis_url: str) -> str:
    return f"""
redis: {{url: "{redis_url}"}}
defaults: {{interval: 0.3s, jitter: 0s, timeout: 3s}}
feeds:
  - {{name: live, url: "{feeds.url('/live.rss')}", backfill: 1}}
  - {{name: down, url: "{feeds.url('/down.rss')}"}}
rules:
  - {{name: r, any: [coalition], channels: [hook, desk]}}
channels:
  - name: hook
    type: webhook
    url: "{hook_url}?token=${{LW_TEST_SECRET}}"
    secret: "${{LW_TEST_SECRET}}"
    headers: {{Authorization: "Bearer ${{LW_TEST_SECRET}}"}}
  - name: desk
    type: email
    to: [desk@example.org]
    from: lw@example.org
    smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, username: lw,
           password: "${{LW_TEST_SECRET}}"}}
"""


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "check-config", str(path)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.slow
def test_env_secrets_never_in_output(tmp_path: Path, feed_server: FeedServer,
                                     webhook_receiver: WebhookReceiver, smtp_server: SmtpServer,
                                     redis_server: EmbeddedRedis) -> None:
    feed_server.set("/live.rss", rss([Item("a1", "Summit", "<p>A coalition forms.</p>", 1)]))
    feed_server.set("/down.rss", "no", status=500)
    cfg = tmp_path / "lw.yaml"
    cfg.write_text(secret_config(feed_server, webhook_receiver.url("/hook"), smtp_server.port,
                                 redis_server.url))
    os.chmod(cfg, 0o644)
    env = {**os.environ, "LW_TEST_SECRET": SECRET}
    checked = check_config(cfg, env)
    assert checked.returncode == 0, checked.stderr
    assert "${LW_TEST_SECRET}" in checked.stdout  # the URL's token, redacted
    assert "world-readable" not in checked.stdout + checked.stderr  # only ${VAR} secrets
    assert SECRET not in checked.stdout + checked.stderr

    service = Service(["run", "--config", str(cfg), "--log-format", "json",
                       "--log-level", "DEBUG"], tmp_path / "run.log", env=env)
    service.start()
    try:
        webhook_receiver.wait_for(lambda r: len(r) >= 1)
        # aiosmtpd offers no AUTH, so the email attempt fails: the error path is logged too.
        deadline = time.monotonic() + 20
        while '"desk"' not in service.logs() and time.monotonic() < deadline:
            time.sleep(0.05)  # a sync test: nothing else runs on this thread
        assert '"desk"' in service.logs()
        assert service.stop() == 0
    finally:
        service.kill()
    logs = service.logs()
    assert '"poll"' in logs and SECRET not in logs

    literal = tmp_path / "literal.yaml"
    literal.write_text(cfg.read_text().replace('secret: "${LW_TEST_SECRET}"',
                                               'secret: "whsec_literal_value"'))
    os.chmod(literal, 0o644)
    checked = check_config(literal, env)
    assert "world-readable" in checked.stderr and "channels[0].secret" in checked.stderr
    assert "whsec_literal_value" not in checked.stdout + checked.stderr
    # The service says so at startup too, in its log, without the value.
    started = Service(["worker", "--config", str(literal), "--log-format", "json"],
                      tmp_path / "literal.log", env=env)
    started.start()
    try:
        deadline = time.monotonic() + 20
        while "world-readable" not in started.logs() and time.monotonic() < deadline:
            time.sleep(0.05)  # a sync test: nothing else runs on this thread
    finally:
        started.kill()
    assert "world-readable" in started.logs() and "channels[0].secret" in started.logs()
    assert "whsec_literal_value" not in started.logs()
