"""One configuration tree for the whole service.

Every module receives only its own section, so a module cannot quietly depend on
settings it does not own. Values come from (highest first) keyword arguments,
environment variables (``PBX_BRIDGE_ARI__URL`` style) and one TOML file.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pbx_bridge.flow.feature_codes import InvalidFeatureCodes, build_codes
from storage.backends.settings import BackendSettings

CONFIG_ENV = "PBX_BRIDGE_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/pbx-bridge/pbx-bridge.toml")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


class Announcement(StrEnum):
    """When, and whether, the caller hears the disclosure."""

    BEFORE_CONNECT = "before-connect"
    ON_CONNECT = "on-connect"
    NOTICE_ONLY = "notice-only"
    NONE = "none"


class LegalBasis(StrEnum):
    """KVKK art. 5 / GDPR art. 6 ground the recording relies on."""

    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate-interest"
    LEGAL_OBLIGATION = "legal-obligation"
    CONTRACT = "contract"


class TimeoutRule(StrEnum):
    """What silence after the disclosure means. Silence is never consent (GDPR art. 4(11))."""

    DECLINED = "declined"
    HANGUP = "hangup"


class RecordingMode(StrEnum):
    """An extension's own recording policy, applied after the caller's choice."""

    ALWAYS = "always"
    ON_DEMAND = "on-demand"
    NEVER = "never"


class RingStrategy(StrEnum):
    """How a ring group rings its members (FreePBX's ringall / hunt)."""

    ALL = "all"  # every member at once; the first to answer takes the call
    ORDER = "order"  # one member after another, each for its own seconds


class Language(StrEnum):
    TR = "tr"
    EN = "en"


class Role(StrEnum):
    """Who a console or API user is; what each may do is pbx_bridge/users/permissions.py."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    DPO = "dpo"
    AUDITOR = "auditor"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AriSettings(_Section):
    url: str = "http://127.0.0.1:8088"
    username: str = "pbx-bridge"
    password: SecretStr = SecretStr("")
    app: str = Field(default="pbx-bridge", pattern=r"^[A-Za-z0-9_.-]+$")
    request_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # Kept-alive REST connections to Asterisk; requests beyond them queue. With the event
    # websocket, the service holds max_connections + 1 of Asterisk's HTTP sessions.
    max_connections: int = Field(default=8, ge=1, le=64)
    # Asterisk's http.conf `sessionlimit` (100 when unset): `pbx-bridge check` warns
    # when this service's sessions, plus room for the CLI, could exceed it.
    http_session_limit: int = Field(default=100, ge=1)
    # Asterisk's recording folder (astspooldir/recording, e.g. /var/spool/asterisk/recording)
    # when it is on this host and this user may read and delete files there: finished
    # recordings are then copied from it and deleted in it, instead of downloaded and
    # deleted over ARI. Unset (the default): over ARI, which is right wherever Asterisk runs.
    recordings_dir: Path | None = None

    @field_validator("recordings_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path (Asterisk's astspooldir/recording)")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (the ARI base, without /ari)")
        return value.rstrip("/")


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./var/pbx-bridge.db"

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
            )
        return value


class LocalStorageSettings(_Section):
    """The embedded default backend, named "local"."""

    path: Path = Path("./var/recordings")
    jurisdiction: str = Field(default="TR", pattern=r"^[A-Z]{2}$")
    encrypt: bool = False


class StorageSettings(_Section):
    spool_dir: Path = Path("./var/spool")
    local: LocalStorageSettings = LocalStorageSettings()
    # More places to keep recordings: [storage.backends.NAME] with type = "ftp", "ftps",
    # "sftp", "s3" or "local".
    backends: dict[str, BackendSettings] = Field(default_factory=dict)
    # Every recording gets a verified copy on each of these before it counts as stored.
    targets: list[str] = Field(default_factory=lambda: ["local"], min_length=1)
    # Refuse to start if a target keeps copies outside this country (e.g. "TR").
    require_jurisdiction: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    # Keep the recording as recorded, or transcode before storing.
    format: Literal["wav", "flac", "opus"] = "wav"
    # Keep the spool copy as a local cache this many days after all copies verified.
    cache_days: int = Field(default=0, ge=0)
    # Sidecar JSON files show the caller's number masked unless this is true.
    sidecar_unmasked_caller: bool = False
    # A copy that fails this many times is dead-lettered (`pbx-bridge storage retry`).
    max_attempts: int = Field(default=12, ge=1)
    retry_initial_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=900.0, gt=0)
    # Master keys for encryption at rest (backends with encrypt = true): a folder of
    # key files, the newest active; or one base64 key in the environment.
    keys_dir: Path | None = None
    # Every audit_interval_s the service checks up to audit_limit stored copies (oldest
    # checked first) and re-uploads any that was truncated or removed behind our back;
    # 0 turns it off (`pbx-bridge storage verify` still works).
    audit_interval_s: float = Field(default=21600.0, ge=0)
    audit_limit: int = Field(default=200, ge=1)
    # Calls first: while the service's event loop wakes up more than busy_lag_ms late,
    # each pipeline step waits (at most busy_max_wait_s) so callers are not kept waiting
    # for their disclosure; recordings wait safely in Asterisk. 0 turns it off.
    busy_lag_ms: float = Field(default=20.0, ge=0)
    busy_max_wait_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _targets_exist_and_stay_in_country(self) -> StorageSettings:
        names = {"local", *self.backends}
        unknown = [t for t in self.targets if t not in names]
        if unknown:
            raise ValueError(
                f"targets: unknown backend(s) {', '.join(unknown)} "
                f"(defined: {', '.join(sorted(names))})"
            )
        if self.require_jurisdiction:
            for target in self.targets:
                where = self.jurisdiction_of(target)
                if where != self.require_jurisdiction:
                    raise ValueError(
                        f"targets: backend {target!r} keeps recordings in {where}, but "
                        f"require_jurisdiction = {self.require_jurisdiction!r}"
                    )
        return self

    def jurisdiction_of(self, backend: str) -> str:
        if backend == "local" and "local" not in self.backends:
            return self.local.jurisdiction
        return self.backends[backend].jurisdiction


class RetentionSettings(_Section):
    default_days: int = Field(default=60, ge=0)
    # Proof of consent must outlive the recordings it justifies, and an audit can come
    # long after the call; two years is a common KVKK practice for such proof.
    evidence_days: int = Field(default=730, ge=0)
    # How often the service deletes recordings past their retain_until (and finishes
    # deletions a backend outage left pending).
    purge_interval_s: float = Field(default=300.0, gt=0)


class PromptSettings(_Section):
    # Texts (and optional studio recordings) per language: prompts/{language}/{name}.txt
    dir: Path = Path("./prompts")
    # Where `pbx-bridge prompts build` writes the 8 kHz audio and manifest.json; install
    # this folder as {asterisk sounds}/{sound_prefix} (or build straight into it).
    build_dir: Path = Path("./var/prompts")
    # Substituted for {controller} in the disclosure texts (KVKK art. 10: who controls).
    controller: str = "Örnek Şirket A.Ş."
    default_language: Language = Language.TR
    # Built prompts are installed under Asterisk's sounds folder in this sub-folder and
    # played as sound:{sound_prefix}/{language}/{name}.
    sound_prefix: str = Field(default="pbx-bridge", pattern=r"^[A-Za-z0-9_/-]+$")
    # Routes with language_by_country: the caller's country (by their number) picks the
    # language, e.g. {GB = "en", DE = "de"}; a country not listed hears the route's own.
    country_languages: dict[str, str] = Field(default_factory=dict)

    @field_validator("country_languages")
    @classmethod
    def _country_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for region, language in value.items():
            if not re.fullmatch(r"[A-Z]{2}", region):
                raise ValueError(f"{region!r}: a country is a two-letter code such as GB")
            if not re.fullmatch(r"[a-z]{2,3}", language):
                raise ValueError(f"{region} = {language!r}: a language code such as en")
        return value


class CallSettings(_Section):
    dial_template: str = "PJSIP/{ext}"
    ring_timeout_s: int = Field(default=30, ge=1, le=600)
    max_repeats: int = Field(default=2, ge=0, le=10)
    # Notice-only routes: after the notice, how long a caller has to press 0 for the
    # full notice (0: only while the notice plays).
    notice_key_wait_s: float = Field(default=3.0, ge=0, le=30)
    # Agent's on-demand recording codes: "*" then the digit, within this many seconds.
    on_demand_digit_window_s: float = Field(default=3.0, gt=0)
    # Record caller and agent on separate channels (caller left, agent right) instead of
    # the mixed bridge: quality teams and speech analytics want to tell them apart.
    stereo: bool = False
    # The agent's PCI pause: *5 mutes the conversation recording (silence of the same
    # length in the file, so times line up and card details never reach disk), *6 ends
    # it. A pause left on resumes by itself after this many minutes, with a tone to the
    # agent: a forgotten pause must not leave the rest of the call unrecorded.
    pci_pause_code: str = "5"
    pci_resume_code: str = "6"
    pci_pause_max_minutes: float = Field(default=5.0, gt=0, le=240)
    # The agent keeps this call's recordings per a retention class: "*" then the code,
    # e.g. {"7" = "sales", "0" = "discard"} (a 0-day class: deleted when the call ends).
    # The classes must exist (`pbx-bridge retention set CLASS DAYS`).
    retention_codes: dict[str, str] = Field(default_factory=dict)
    # Transfers by the agent: "*" + the code + the extension + "#" (or a pause of
    # transfer_digit_timeout_s after the last digit, as Asterisk's transferdigittimeout).
    # Blind: the caller goes to the extension at once. Attended: the caller holds while
    # the agent talks to the extension; the agent hanging up (or "#") completes it, "*"
    # (or the extension not answering, or hanging up) brings the agent back. Empty: off.
    blind_transfer_code: str = "8"
    attended_transfer_code: str = "9"
    transfer_digit_timeout_s: float = Field(default=3.0, gt=0, le=30)
    # What the caller hears while held for an attended transfer: Asterisk's
    # music-on-hold class (musiconhold.conf); empty: silence.
    transfer_hold_music: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]*$")
    # Agents' calls out ([pbx-bridge-outbound]): how the callee is dialled over the trunk
    # ({number} is the number the agent dialled; an outbound route may name its own), and
    # which dialled numbers are extensions (dialled with dial_template, scope internal).
    outbound_dial_template: str = "PJSIP/{number}@carrier"
    internal_number_pattern: str = r"^[1-9][0-9]{1,5}$"

    @model_validator(mode="after")
    def _codes_apart(self) -> CallSettings:
        try:
            build_codes(
                pause=self.pci_pause_code,
                resume=self.pci_resume_code,
                retention=self.retention_codes,
                blind_transfer=self.blind_transfer_code,
                attended_transfer=self.attended_transfer_code,
            )
        except InvalidFeatureCodes as exc:
            raise ValueError(str(exc)) from exc
        for name in self.retention_codes.values():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
                raise ValueError(f"retention_codes: {name!r} is no retention class name")
        return self

    @field_validator("dial_template")
    @classmethod
    def _has_ext(cls, value: str) -> str:
        if "{ext}" not in value:
            raise ValueError("must contain {ext}, e.g. PJSIP/{ext}")
        return value

    @field_validator("outbound_dial_template")
    @classmethod
    def _has_number(cls, value: str) -> str:
        if "{number}" not in value:
            raise ValueError("must contain {number}, e.g. PJSIP/{number}@carrier")
        return value

    @field_validator("internal_number_pattern")
    @classmethod
    def _is_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


# An extension, or ``group:`` and a ring group's name (calls/ring_groups.py).
ROUTE_TARGET_PATTERN = r"^(group:[a-z0-9][a-z0-9_-]{0,57}|[A-Za-z0-9_+*#-]+)$"


class RouteSettings(_Section):
    """The route used for a DID that has no route of its own in the database."""

    # An extension, or a ring group as ``group:NAME`` (``pbx-bridge group set``).
    target: str = Field(default="100", pattern=ROUTE_TARGET_PATTERN)
    announcement: Announcement = Announcement.BEFORE_CONNECT
    language: Language | None = None
    legal_basis: LegalBasis = LegalBasis.CONSENT
    timeout_means: TimeoutRule = TimeoutRule.DECLINED
    prompt_timeout_s: int = Field(default=8, ge=1, le=60)
    retention_class: str = "default"
    # Callers may press 8 at the disclosure to withdraw consent for good: a withdrawal
    # request is opened for their number and they go on the do-not-record list.
    offer_withdrawal: bool = False

    @model_validator(mode="after")
    def _truthful(self) -> RouteSettings:
        """The default route must not make the prompt lie either (as ``route set``)."""
        from pbx_bridge.disclosure import untruthful  # it imports this module's enums

        problems = untruthful(
            self.announcement, self.legal_basis, offer_withdrawal=self.offer_withdrawal
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class OutboundRouteSettings(_Section):
    """The outbound route for a dialled number no outbound route's prefix matches
    (``pbx-bridge outbound-route set PREFIX ...``): what the callee hears on answer."""

    announcement: Announcement = Announcement.NOTICE_ONLY
    language: Language | None = None
    legal_basis: LegalBasis = LegalBasis.LEGITIMATE_INTEREST
    timeout_means: TimeoutRule = TimeoutRule.DECLINED
    prompt_timeout_s: int = Field(default=8, ge=1, le=60)
    retention_class: str = "default"
    # An agent's call to another extension: nobody outside is on it, so nobody is
    # announced to; it is recorded (per both extensions' internal cells) on this basis.
    internal_legal_basis: LegalBasis = LegalBasis.LEGITIMATE_INTEREST

    @model_validator(mode="after")
    def _truthful(self) -> OutboundRouteSettings:
        """What the callee hears must not lie either (as ``outbound-route set``)."""
        from pbx_bridge.disclosure import outbound_untruthful

        problems = outbound_untruthful(self.announcement, self.legal_basis)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PrivacySettings(_Section):
    """Data-subject requests: how numbers are recognised and how long a request may take."""

    # Numbers written without a country code are read as numbers of this region.
    default_region: str = Field(default="TR", pattern=r"^[A-Z]{2}$")
    # The secret behind the keyed hash that finds a subject's rows (also after their
    # number was erased). Created on first use if missing; back it up with the database:
    # without it no subject can be found again. The environment may give it instead
    # (PBX_BRIDGE_PRIVACY__SUBJECT_KEY, base64 of at least 32 bytes).
    subject_key_file: Path = Path("./var/subject.key")
    subject_key: SecretStr | None = None
    # KVKK art. 13 and GDPR art. 12: answer within 30 days.
    due_days: int = Field(default=30, ge=1, le=365)
    # Requests due within this many days are reported as "due soon".
    due_soon_days: int = Field(default=7, ge=0, le=365)
    # Exports (ZIP files with the subject's recordings) are written here and deleted
    # this many days after they were made.
    export_dir: Path = Path("./var/exports")
    export_days: int = Field(default=7, ge=1, le=365)
    # The service walks the audit trail's hash chain this often (0: never) and logs the
    # head, or the first entry that was changed, removed or reordered.
    audit_verify_interval_s: float = Field(default=86400.0, ge=0)


class CheckSettings(_Section):
    """What `pbx-bridge check` may look at beside ARI, and where it draws the lines."""

    # Asterisk's configuration folder: http.conf (its real sessionlimit) and
    # indications.conf (the default tone zone) are read from here when readable.
    asterisk_config_dir: Path = Path("/etc/asterisk")
    # Asterisk's sounds folder: the installed prompts, {asterisk_sounds_dir}/{sound_prefix},
    # are compared (sha256) with the manifest when readable from here.
    asterisk_sounds_dir: Path = Path("/usr/share/asterisk/sounds")
    # How to run one Asterisk CLI command (appended as the last argument) on the live
    # Asterisk, to ask its default tone zone; empty: never try (indications.conf is read).
    asterisk_cli: tuple[str, ...] = ("asterisk", "-rx")
    # Clocks further apart than this make recording and consent times disagree.
    max_clock_skew_s: float = Field(default=2.0, gt=0)
    # Less free space than this on the spool or local storage is a problem; less than
    # twice this, a warning.
    min_free_mb: int = Field(default=1024, ge=0)
    # Asterisk HTTP sessions to keep free beyond the service's own, for the CLI, this
    # check and any other ARI or HTTP user.
    session_headroom: int = Field(default=10, ge=0)
    # Each step of a check (an ARI request, a backend probe) gives up after this long, a
    # whole check after twice that plus 10 s, so a dead Asterisk cannot hang the command.
    timeout_s: float = Field(default=10.0, gt=0)


class AuthSettings(_Section):
    """Signing in to the console and the API: passwords, second factor, lockout, sessions."""

    # A password shorter than this is refused (`users add`, `users reset-password`).
    min_password_length: int = Field(default=12, ge=8, le=128)
    # argon2id cost. Raising these rehashes each user's password at their next sign-in.
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8, le=4_194_304)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    # Roles that must sign in with a TOTP code as well (a user's own --require-totp adds to it).
    totp_required_roles: tuple[Role, ...] = ()
    # The issuer name an authenticator app shows beside the account.
    totp_issuer: str = Field(default="pbx-bridge", min_length=1, max_length=64)
    # This many failed sign-ins in a row lock the account for lockout_minutes.
    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # At most this many failed sign-ins from one address within ip_window_minutes, whatever
    # names they try; further attempts from it are refused unheard until the window passes.
    ip_max_failures: int = Field(default=20, ge=1, le=10_000)
    ip_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # A console session ends after this long idle, and in any case this long after sign-in.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=24 * 30)
    # API tokens expire after this many days unless `tokens create --expires-days` says.
    token_days: int = Field(default=90, ge=1, le=3650)


class LogSettings(_Section):
    level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")


class MetricsSettings(_Section):
    # host:port of the /metrics and /healthz listener; None (the default) serves neither.
    listen: str | None = None
    # How often the database-derived gauges (backlog, purge lag, overdue requests) are
    # refreshed: one set of cheap queries per interval, however many scrapers there are.
    refresh_interval_s: float = Field(default=15.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self.listen is None else listen_address(self.listen)


class WebSettings(_Section):
    """The web console and REST API (`pbx-bridge web`), a process of its own."""

    # host:port the console listens on; put a TLS reverse proxy (nginx) in front of it.
    listen: str = "127.0.0.1:8090"
    # The address people and share links use (https://... behind the proxy). Cookies are
    # marked Secure when it is https.
    base_url: str = "http://127.0.0.1:8090"
    # Signs the console's CSRF tokens (and later share links). Required: `pbx-bridge web`
    # refuses to start without it. At least 32 characters, e.g. `openssl rand -hex 32`.
    secret_key: SecretStr | None = None
    # Erasure, bulk export and un-hold need a second DPO's approval.
    four_eyes: bool = False
    # The dashboard's numbers are computed in the background at most this often per
    # scope (about 1 s at 1,000,000 calls); pages show the last result and its time.
    dashboard_refresh_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Share links: the default lifetime in days; a link may ask for 1..MAX_SHARE_DAYS.
    share_days: int = Field(default=7, ge=1, le=30)
    # How often the console deletes ended sign-in sessions and long-ended share links.
    cleanup_interval_s: float = Field(default=600.0, ge=1.0, le=86400.0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        listen_address(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// on loopback), e.g. "
                             "https://pbx-bridge.example.com")
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def address(self) -> tuple[str, int]:
        return listen_address(self.listen)

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


class CommandSettings(_Section):
    """Commands from the console, the API and the CLI to the service that owns a call
    (a PCI pause by API, a click-to-call): rows in the database that a service takes."""

    # This service's name among the nodes sharing the database (a command may name the
    # node that must take it; the trail says which did). Default: the host's name.
    node: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128,
                      pattern=r"^[A-Za-z0-9_.:-]+$")
    # A command no service took within this many seconds is answered "no service owns
    # this call" (the service is down, or the call is not live on any node).
    take_within_s: float = Field(default=5.0, ge=0.5, le=120.0)
    # How long the API waits for the outcome before answering 202 with the command's id.
    wait_s: float = Field(default=5.0, ge=0.0, le=30.0)
    # How often a service looks for new commands where the database cannot wake it
    # (SQLite); with PostgreSQL, LISTEN/NOTIFY wakes it at once and this is a safety net
    # run ten times less often.
    poll_interval_s: float = Field(default=0.5, ge=0.05, le=10.0)


def listen_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` → (host, port), or a ValueError saying why."""
    host, sep, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"expected host:port such as 127.0.0.1:9464 (port 1-65535), got {value!r}"
        )
    return host, int(port_text)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PBX_BRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    ari: AriSettings = AriSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    retention: RetentionSettings = RetentionSettings()
    prompts: PromptSettings = PromptSettings()
    call: CallSettings = CallSettings()
    default_route: RouteSettings = RouteSettings()
    default_outbound_route: OutboundRouteSettings = OutboundRouteSettings()
    privacy: PrivacySettings = PrivacySettings()
    check: CheckSettings = CheckSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    web: WebSettings = WebSettings()
    commands: CommandSettings = CommandSettings()
    auth: AuthSettings = AuthSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is passed in as init data by load_settings; the environment wins.
        return (env_settings, init_settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against pbx-bridge.example.toml)"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def load_settings(path: Path | None = None) -> Settings:
    """Load the config file (if any) under the environment's overrides.

    With no explicit path, ``$PBX_BRIDGE_CONFIG`` is used, then the system path if it
    exists; with neither, the embedded defaults (SQLite and local storage under ./var).
    """
    if path is None:
        env_path = os.environ.get(CONFIG_ENV)
        if env_path:
            path = Path(env_path)
        elif DEFAULT_CONFIG_PATH.exists():
            path = DEFAULT_CONFIG_PATH
    data = _read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "configuration"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
