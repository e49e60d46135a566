"""What Asterisk's own configuration says, where this host can read it or ask Asterisk's
CLI: the HTTP session limit the service's connection pool must stay under, and the
default tone zone the ringing tone is played from."""

from __future__ import annotations

import asyncio
import configparser
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pbx_bridge.config import AriSettings, CheckSettings
from pbx_bridge.health_check.findings import Finding, ok, problem, warning

# Asterisk's own default when http.conf sets no sessionlimit.
ASTERISK_DEFAULT_SESSION_LIMIT = 100
CLI_TIMEOUT_S = 5.0


# -- decisions -----------------------------------------------------------------------------

def _sections(text: str) -> configparser.ConfigParser:
    """Asterisk's .conf files are close enough to INI for the keys read here (`=` or `=>`,
    `;` comments); duplicate sections and keys keep the last value, as Asterisk does."""
    parser = configparser.ConfigParser(
        delimiters=("=>", "="), comment_prefixes=(";",), inline_comment_prefixes=(";",),
        strict=False, interpolation=None,
    )
    parser.read_string("\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("#", "exten"))
    ))
    return parser


def http_session_limit(text: str) -> int:
    """The sessionlimit http.conf gives Asterisk (its default when unset or unreadable)."""
    try:
        value = _sections(text).get("general", "sessionlimit", fallback=None)
    except configparser.Error:
        return ASTERISK_DEFAULT_SESSION_LIMIT
    if value is None or not value.strip().isdigit():
        return ASTERISK_DEFAULT_SESSION_LIMIT
    return int(value.strip())


@dataclass(frozen=True)
class SessionBudget:
    service: int  # max_connections + the event websocket
    headroom: int
    limit: int

    @property
    def needed(self) -> int:
        return self.service + self.headroom


def session_findings(
    settings: AriSettings, headroom: int, file_limit: int | None, source: str | None
) -> list[Finding]:
    """Warn before Asterisk refuses sessions ("HTTP session count exceeded"): the service
    holds max_connections + 1 of them, and the CLI and other ARI users need some too."""
    limit = file_limit if file_limit is not None else settings.http_session_limit
    budget = SessionBudget(settings.max_connections + 1, headroom, limit)
    details = {"service_sessions": budget.service, "headroom": headroom, "limit": limit,
               "limit_from": source or "[ari] http_session_limit"}
    findings: list[Finding] = []
    if file_limit is not None and file_limit != settings.http_session_limit:
        findings.append(warning(
            "asterisk.sessions", f"{source} has sessionlimit = {file_limit} but "
            f"[ari] http_session_limit = {settings.http_session_limit}: set it to "
            f"{file_limit}", **details))
    if budget.service > limit:
        findings.append(problem(
            "asterisk.sessions", f"the service alone can hold {budget.service} HTTP sessions "
            f"([ari] max_connections + 1) but Asterisk allows {limit}: lower max_connections "
            "or raise sessionlimit in http.conf", **details))
    elif budget.needed > limit:
        findings.append(warning(
            "asterisk.sessions", f"the service's {budget.service} HTTP sessions "
            f"([ari] max_connections + 1) plus {headroom} for the CLI and other ARI users "
            f"exceed Asterisk's sessionlimit {limit}: raise sessionlimit in http.conf (and "
            "[ari] http_session_limit) or lower max_connections", **details))
    else:
        findings.append(ok(
            "asterisk.sessions", f"{budget.service} HTTP sessions for the service + "
            f"{headroom} spare within sessionlimit {limit}", **details))
    return findings


def default_zone_from_cli(output: str) -> str | None:
    """`indication show` ends with "Default tone zone: tr" only when there is one."""
    match = re.search(r"^\s*Default tone zone:\s*(\S+)", output, re.MULTILINE)
    return match.group(1) if match else None


def default_zone_from_file(text: str) -> str | None:
    """indications.conf's [general] country, if it names a zone the file defines."""
    try:
        parser = _sections(text)
    except configparser.Error:
        return None
    country = parser.get("general", "country", fallback="").strip()
    return country if country and parser.has_section(country) else None


# -- checks --------------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


async def check_sessions(ari: AriSettings, check: CheckSettings) -> list[Finding]:
    path = check.asterisk_config_dir / "http.conf"
    text = await asyncio.to_thread(_read, path)
    file_limit = http_session_limit(text) if text is not None else None
    return session_findings(ari, check.session_headroom, file_limit,
                            str(path) if text is not None else None)


async def asterisk_cli(command: Sequence[str], line: str) -> str:
    """Run one Asterisk CLI command; OSError/RuntimeError say why it could not be asked."""
    process = await asyncio.create_subprocess_exec(
        *command, line, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"no answer within {CLI_TIMEOUT_S:g} s") from None
    text = out.decode("utf-8", errors="replace")
    if process.returncode != 0:
        first = text.strip().splitlines()[0] if text.strip() else f"exit {process.returncode}"
        raise RuntimeError(first)
    return text


async def check_tone_zone(check: CheckSettings) -> list[Finding]:
    """The live Asterisk if its CLI can be asked from here, else indications.conf."""
    name = "asterisk.tone_zone"
    fix = ("set country= in [general] of indications.conf to a zone it defines "
           "(asterisk-conf/indications.conf adds Turkey's) and `module reload indications`")
    why_not_live = "asterisk_cli is empty"
    if check.asterisk_cli:
        try:
            output = await asterisk_cli(check.asterisk_cli, "indication show")
        except (OSError, RuntimeError) as exc:
            why_not_live = f"`{' '.join(check.asterisk_cli)} 'indication show'` failed: {exc}"
        else:
            if "Description" not in output:  # not the zone table: Asterisk was not reached
                first = output.strip().splitlines()[0] if output.strip() else "no output"
                why_not_live = f"`indication show` printed no zone table ({first})"
            else:
                zone = default_zone_from_cli(output)
                if zone is None:
                    return [problem(name, f"Asterisk has no default tone zone: {fix}")]
                return [ok(name, f"default tone zone {zone}", zone=zone, source="asterisk cli")]
    path = check.asterisk_config_dir / "indications.conf"
    text = await asyncio.to_thread(_read, path)
    if text is None:
        return [warning(name, f"default tone zone not checked: {why_not_live}, and {path} "
                        "is not readable from here ([check] asterisk_cli, "
                        "asterisk_config_dir)")]
    zone = default_zone_from_file(text)
    if zone is None:
        return [problem(name, f"{path} sets no default tone zone: {fix}", source=str(path))]
    return [ok(name, f"default tone zone {zone} (from {path}; the live Asterisk was not "
               f"asked: {why_not_live})", zone=zone, source=str(path))]
