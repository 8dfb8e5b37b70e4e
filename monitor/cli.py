"""The `livewatch` command line. Worker-side commands (`run`, `worker`, `poll-once`, `demo`)
are contributed through the `livewatch.commands` entry-point group, so `monitor` never imports
`workers`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from monitor import __version__
from monitor.config.loader import load_config
from monitor.config.models import Config
from monitor.config.secrets import env_values, world_readable_secrets
from monitor.core.errors import ConfigError, LivewatchError, StateError
from monitor.core.redaction import redact, url_shown
from monitor.ops.child import ChildSpec, watching_parent
from monitor.ops.control import Control, Role, serve
from monitor.ops.inspect import inspect_command
from monitor.ops.logs import configure_logging
from monitor.ops.runtime import redis_client
from monitor.poll.role import run_pollers
from monitor.sources.sandbox import exit_abandoning_parses

config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config/livewatch.yaml"), show_default=True, help="YAML configuration file.")
log_options = [
    click.option("--log-format", type=click.Choice(["auto", "console", "json"]),
                 default="auto", show_default=True,
                 help="auto: human lines on a terminal, JSON lines otherwise."),
    click.option("--log-level", default="INFO", show_default=True),
]


def _spec(_ctx: click.Context, _param: click.Parameter, value: str | None) -> ChildSpec | None:
    if value is None:
        return None
    try:
        return ChildSpec.model_validate_json(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None


#: Set by `livewatch run --processes N` on its children (`monitor.ops.child`); hidden.
supervised_option = click.option("--supervised", "supervised", hidden=True, callback=_spec,
                                 help="A ChildSpec as JSON (from the supervisor).")


def with_logging(func: Any) -> Any:
    """Add --log-format/--log-level to a command."""
    for option in reversed(log_options):
        func = option(func)
    return func


def load_or_exit(path: Path) -> Config:
    """Load a config or print every problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[bold red]invalid configuration[/] ({len(exc.problems)} problem"
                  f"{'s' if len(exc.problems) != 1 else ''}):")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False)
        sys.exit(2)


def warn_literal_secrets(path: Path) -> None:
    """Log a warning when the config file is world-readable and holds literal secrets."""
    warning = world_readable_secrets(path)
    if warning:
        structlog.get_logger("livewatch.config").warning(warning)


def fail(exc: LivewatchError) -> None:
    """Print a livewatch error and exit 1."""
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {exc}")
    sys.exit(1)


class _Group(click.Group):
    """A click group that also lists commands from the `livewatch.commands` entry points."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="livewatch.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in (plugins := self._plugins()):
            loaded = plugins[cmd_name].load()
            assert isinstance(loaded, click.Command)
            return loaded
        return command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="livewatch")
def main() -> None:
    """livewatch: alerts within seconds when a phrase appears in a live feed or live blog."""


def feed_url_shown(url: str, hidden: Mapping[str, str]) -> str:
    """A feed URL as the command line prints it: values from `${VAR}` (`hidden`, from
    `env_values`) as `${VAR}`, without userinfo, query or fragment (where tokens go)."""
    return url_shown(redact(url, hidden), "path")


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check_config(path: Path) -> None:
    """Validate a configuration file; print a summary, or every problem (exit 2)."""
    config = load_or_exit(path)
    out = Console(highlight=False)
    hidden = env_values(path)  # values from ${VAR} are printed as ${VAR}
    warning = world_readable_secrets(path)
    if warning:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold yellow]warning:[/] {warning}")
    enabled = sum(1 for f in config.feeds if f.enabled)
    redis = "embedded" if config.redis.embedded else "external"
    out.print(f"[green]OK[/] {path}: {len(config.feeds)} feeds ({enabled} enabled), "
              f"{len(config.rules)} rules, {len(config.channels)} channels, redis {redis}")
    table = Table("feed", "kind", "interval", "url", title="feeds")
    for feed in config.feeds:
        table.add_row(feed.name + ("" if feed.enabled else " (disabled)"), feed.kind,
                      f"{config.interval(feed):g}s", feed_url_shown(feed.url, hidden))
    out.print(table)
    rules = Table("rule", "any", "all", "none", "query", "feeds", "channels", "severity",
                  title="rules")
    for rule in config.rules:
        query = rule.query or "-"
        rules.add_row(rule.name, str(len(rule.any)), str(len(rule.all)), str(len(rule.none)),
                      query if len(query) <= 60 else query[:59] + "…",
                      ", ".join(rule.feeds), ", ".join(rule.channels), rule.severity)
    out.print(rules)
    channels = Table("channel", "type", "target", title="channels")
    for channel in config.channels:
        channels.add_row(channel.name, channel.type, redact(channel.target, hidden))
    out.print(channels)


@main.command("poller")
@config_option
@with_logging
@supervised_option
def poller(config_path: Path, log_format: str, log_level: str,
           supervised: ChildSpec | None) -> None:
    """Run only the pollers (scale out: any number of pollers and workers share one Redis)."""

    async def role(config: Config, client: Any, stop: asyncio.Event, control: Control) -> None:
        await run_pollers(config, client, stop, control=control)

    serve_role(config_path, log_format, log_level, role, supervised)


def _watched(role: Role, spec: ChildSpec) -> Role:
    """`role`, stopped gracefully when the supervisor of this child is gone."""

    async def run(config: Config, client: Any, stop: asyncio.Event, control: Control) -> None:
        with watching_parent(spec, stop):
            await role(config, client, stop, control)

    return run


def serve_role(config_path: Path, log_format: str, log_level: str, role: Role,
               supervised: ChildSpec | None = None) -> None:
    """Set up logging, load the config (exit 2 if invalid), and serve `role` until stopped;
    `supervised`: as a child of `livewatch run --processes N`, with its overrides."""
    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    adjust = None
    if supervised is not None:
        structlog.contextvars.bind_contextvars(process=supervised.name)
        role, adjust = _watched(role, supervised), supervised.apply
    config = load_or_exit(config_path)
    if supervised is None:  # else the supervisor said it
        warn_literal_secrets(config_path)
    try:
        asyncio.run(serve(adjust(config) if adjust else config, config_path, role,
                          adjust=adjust))
    except LivewatchError as exc:
        fail(exc)
    exit_abandoning_parses()  # shutdown is bounded whatever a parsing thread is doing


def serve_supervised(config_path: Path, log_format: str, log_level: str, pollers: int) -> None:
    """`livewatch run --processes N`: load the config (exit 2 if invalid) before any child
    starts, then supervise `pollers` poller processes and one worker process until stopped."""
    from monitor.ops.supervisor import supervise

    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    config = load_or_exit(config_path)
    warn_literal_secrets(config_path)
    try:
        asyncio.run(supervise(config, config_path, pollers,
                              ["--log-format", log_format, "--log-level", log_level]))
    except LivewatchError as exc:
        fail(exc)


@main.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of tables.")
def status(config_path: Path, as_json: bool) -> None:
    """Show feeds, channels, workers and stream lag, read from Redis (exit 1 if unreachable)."""
    import json

    from monitor.ops import status as st

    config = load_or_exit(config_path)
    url = st.redis_url(config)
    if url is None:
        fail(StateError(f"livewatch is not running: no embedded Redis URL in "
                        f"{st.url_file(config)} (start `livewatch run`, or set redis.url)"))
        return

    async def go(url: str) -> dict[str, Any]:
        try:
            async with redis_client(config.redis, url, socket_connect_timeout=3) as client:
                return await st.collect(client, config)
        except (RedisError, OSError) as exc:
            raise StateError(f"cannot reach Redis at {st.redact(url)}: {exc}") from exc

    try:
        report = asyncio.run(go(url))
    except LivewatchError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps({"redis": st.redact(url), **report}, indent=2))
    else:
        out = Console(highlight=False)
        out.print(f"redis {st.redact(url)}")
        st.render(report, out)


main.add_command(inspect_command)
