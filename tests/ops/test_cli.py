"""The command line as a user runs it: real subprocesses, real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from feeds import Item, rss
from servers import FeedServer
from service import REPO, livewatch


def test_help_lists_every_command() -> None:
    result = livewatch("--help")
    assert result.returncode == 0
    for command in ("run", "poller", "worker", "check-config", "poll-once", "demo"):
        assert command in result.stdout


def test_check_config_accepts_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "config/example.yaml"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PATH": "", "LW_WEBHOOK_SECRET": "whsec_dGVzdA==", "LW_SMTP_PASSWORD": "pw"})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "feeds" in result.stdout


def test_check_config_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
feeds:
  - {name: a, url: "ftp://example.org/feed"}
rules:
  - {name: r, any: [x], channels: [missing]}
channels:
  - {name: hook, type: webhook, url: "https://hooks.example.org/x", colour: red}
""")
    result = livewatch("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: feeds[0].url:" in result.stderr
    assert f"{bad}: rules[0].channels[0]: rule 'r' names unknown channel 'missing'" in (
        result.stderr.replace("\n  ", " "))
    assert "channels[0].colour: unknown key" in result.stderr


def test_poll_once_prints_kind_entries_and_matches(tmp_path: Path,
                                                   feed_server: FeedServer) -> None:
    feed_server.set("/live.rss?token=secret", rss([  # the feed's URL holds a token
        Item("u1", "Talks resume", "<p>A “coalition of the <em>willing</em>” is formed.</p>", 1),
        Item("u2", "Weather", "<p>Rain is expected in London later.</p>", 2)]))
    feed_server.set("/gone.rss", "gone", status=404, content_type="text/plain")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
feeds:
  - {{name: live, url: "{feed_server.url('/live.rss?token=secret')}"}}
  - {{name: gone, url: "{feed_server.url('/gone.rss')}"}}
rules:
  - {{name: coalition, any: ["coalition of the willing"], channels: [hook]}}
channels:
  - {{name: hook, type: webhook, url: "http://127.0.0.1:9/never-called"}}
""")
    result = livewatch("poll-once", "--config", str(cfg), "live")
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "detected kind: rss, 2 entries" in out
    assert "Talks resume" in out and "Weather" in out
    assert out.count("matches rule coalition") == 1
    assert f"live {feed_server.url('/live.rss')} " in out  # shown without its query
    assert "token" not in result.stdout + result.stderr
    assert "secret" not in result.stdout + result.stderr
    failed = livewatch("poll-once", "--config", str(cfg), "gone")
    assert failed.returncode == 1 and "404" in failed.stdout


@pytest.mark.slow
def test_demo_alerts_on_the_right_posts() -> None:
    result = livewatch("demo", "--every", "0.8", "--interval", "0.3", "--duration", "9",
                       timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = [line for line in result.stdout.splitlines() if line.startswith("ALERT")]
    titles = [line.split(": ", 1)[1] for line in alerts]
    # p2 (phrase), p4 (phrase added by an edit), p5 (boots on the ground), each once; not the
    # near-misses (p3), the typo fix of p2, or the football post (vetoed).
    assert sorted(titles) == sorted([
        "Foreign secretary hints at a European force", "Markets steady as talks begin",
        "Prime minister: “boots on the ground” possible"]), result.stdout


def test_poll_once_reads_live_blogs_and_html_pages(tmp_path: Path, feed_server: FeedServer,
                                                   data_dir: Path) -> None:
    html = "text/html; charset=utf-8"
    for stem in ("liveblog_list", "liveblog_graph", "liveblog_ended", "article", "plain_page"):
        feed_server.set(f"/{stem}", (data_dir / f"{stem}.html").read_bytes(), content_type=html)
    sel = json.dumps(json.loads((data_dir / "article.selectors.json").read_text()))  # flow YAML
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
feeds:
  - {{name: list, url: "{feed_server.url('/liveblog_list')}"}}
  - {{name: graph, url: "{feed_server.url('/liveblog_graph')}", kind: liveblog}}
  - {{name: ended, url: "{feed_server.url('/liveblog_ended')}"}}
  - {{name: page, url: "{feed_server.url('/article')}", kind: html, selectors: {sel}}}
  - {{name: sniffed, url: "{feed_server.url('/article')}", selectors: {sel}}}
  - {{name: plain, url: "{feed_server.url('/plain_page')}"}}
rules:
  - {{name: fuel, any: ["fuel duty"], channels: [hook]}}
channels:
  - {{name: hook, type: webhook, url: "http://127.0.0.1:9/never-called"}}
""")
    expected = {
        "list": ("liveblog", "liveblog_list"), "graph": ("liveblog", "liveblog_graph"),
        "ended": ("liveblog", "liveblog_ended"), "page": ("html", "article"),
        "sniffed": ("html", "article"),
    }
    for name, (kind, stem) in expected.items():
        result = livewatch("poll-once", "--config", str(cfg), name)
        assert result.returncode == 0, result.stdout + result.stderr
        out = " ".join(result.stdout.split())
        titles = [e["title"] for e in json.loads(
            (data_dir / f"{stem}.expected.json").read_text(encoding="utf-8"))]
        assert f"detected kind: {kind}, {len(titles)} entries" in out
        for title in titles:
            assert (title or "(untitled)") in out
        if name == "list":
            assert out.count("matches rule fuel") == 2
        if name == "ended":
            assert "coverage ended: 2026-01-21T18:30:00+00:00" in out
    plain = livewatch("poll-once", "--config", str(cfg), "plain")
    assert plain.returncode == 1
    out = " ".join(plain.stdout.split())
    assert "LiveBlogPosting" in out and "kind: html" in out and "selectors" in out


def test_check_config_lists_queries_and_severity(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
feeds: [{name: summit, url: "https://news.example.org/live.rss"}]
rules:
  - {name: troops, query: '(troops OR soldiers) NEAR/3 Ukraine', channels: [hook],
     severity: urgent}
channels: [{name: hook, type: webhook, url: "https://hooks.example.org/x"}]
""")
    result = livewatch("check-config", str(path), env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "troops" in line)
    assert "(troops OR soldiers) NEAR/3 Ukraine" in line and "urgent" in line
