"""Configuration in layers: defaults → TOML file → environment → command line.

Loaded once by the command line and passed down; no other module reads the
environment. Every key is described in ``gateway.example.toml``. A key that is
unknown, missing or of the wrong type stops the start with a message naming the
key and where it came from.

Every value is also checked for range and form where it is read (port 1–65535,
a known timezone, a known log level, a positive count …, see :data:`RULES` and
the README's configuration section), so a mistake stops the start in one line
naming the key and the file, the variable or the option it came from.

Environment: ``GATEWAY_<SECTION>_<KEY>`` for any key of a section, e.g.
``GATEWAY_SMS_AUTH_TOKEN``; ``GATEWAY_PBX_<NAME>_<KEY>`` for one PBX, e.g.
``GATEWAY_PBX_MAIN_SECRET``. Command line: ``--set section.key=value``.
"""

from __future__ import annotations

import codecs
import dataclasses
import ipaddress
import math
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gateway.cluster.identity import NAME_FORM, NAME_PATTERN, default_name
from gateway.errors import GatewayError


class ConfigError(GatewayError):
    """A configuration value is missing, unknown or malformed."""

    def __init__(self, key: str, source: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.key = key
        self.source = source
        self.reason = reason


class Secret:
    """A value that never shows itself in a repr, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class GatewaySection:
    data_dir: Path = Path("gateway-data")
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    # This gateway's name on the store (its leases and calls carry it); two gateways on
    # one database must have different names. Default: from the host name.
    name: str = field(default_factory=default_name)


@dataclass(frozen=True)
class StoreSection:
    # Empty: <data_dir>/gateway.sqlite3
    path: str = ""
    # postgresql://user:password@host:port/database: the store on PostgreSQL instead of
    # the SQLite file (a secret: it may hold the password). Empty: SQLite.
    url: Secret = Secret("")
    # PostgreSQL: how long (seconds) a write waits for another writer's lock before it
    # fails as "locked by another process", like SQLite's busy timeout (5 s there).
    lock_timeout: float = 10.0
    # PostgreSQL: this gateway's pooled connections for writes and most reads (it opens
    # 4 more for the dashboard's reads and 1 for its place among the gateways).
    pool_size: int = 10
    # Seconds this gateway's clock may be off the database server's (PostgreSQL) before
    # it stops claiming work (``/health`` shows it); twice this is waited past another
    # gateway's lease before taking it over.
    max_clock_skew: float = 30.0


@dataclass(frozen=True)
class PbxSection:
    name: str = "main"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "gateway"
    secret: Secret = Secret("")
    auth: str = "md5"  # "md5" (challenge) or "plain" (the secret in clear: warned)
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    action_timeout: float = 10.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    login_attempts: int = 5
    # The Originate channel of a callback; {number} is the national number to dial.
    dial_string: str = "PJSIP/{number}@trunk"
    # Trunk lines of this PBX for callbacks: at most this many callback calls up on it at
    # once, counted in the store over every gateway. 0: no callbacks on this PBX (hotline
    # only). Unset: callbacks.max_concurrent_calls (see Config.lines_of).
    lines: int | None = None
    hotline_context: str = "hotline"
    # How the PBX encodes text (caller names): "utf-8", or e.g. "gbk" for an old site.
    charset: str = "utf-8"
    # The PBX host's timezone (e.g. "UTC"), for its Cdr times until the call log has
    # learned its clock from its events; empty: UTC.
    timezone: str = ""
    # Where the gateway reads this PBX's MixMonitor recordings (the names the call log
    # keeps, e.g. hotline/2026/11/30/<uniqueid>.wav, are under it): the PBX's monitor
    # folder or a share of it. Empty: call recordings are listed but not played.
    monitor_dir: str = ""


@dataclass(frozen=True)
class AgiSection:
    # FastAGI: where the dialplan's AGI(agi://host:port/<pbx name>) reaches the gateway.
    # Port 0: no FastAGI listener, calls arrive only by AsyncAGI (AGI(agi:async)).
    listen_host: str = "127.0.0.1"
    listen_port: int = 0


@dataclass(frozen=True)
class SmsSection:
    # https://api.twilio.com for the real Twilio; the simulated one in the demo.
    api_base_url: str = "https://api.twilio.com"
    account_sid: str = ""
    auth_token: Secret = Secret("")
    from_number: str = ""
    messaging_service_sid: str = ""
    rate_per_second: float = 10.0
    http_timeout: float = 15.0
    max_attempts: int = 8
    backoff_min: float = 1.0
    backoff_max: float = 600.0
    quiet_start: str = "21:00"  # local time; texts to citizens wait until quiet_end
    quiet_end: str = "08:00"
    workers: int = 4
    # After a timeout, a 5xx or a dropped connection the text may have reached the
    # provider: wait at least this long, then look it up before sending it again.
    lookup_delay: float = 30.0
    # The outbox worker looks for due texts at least this often (seconds), besides
    # being woken whenever a text is queued.
    poll_interval: float = 1.0
    # A text handed to the provider with no status news for this long (seconds) is
    # fetched from the provider, in case its callbacks were lost (gateway down).
    status_refresh: float = 600.0


@dataclass(frozen=True)
class WebSection:
    host: str = "127.0.0.1"
    port: int = 8080
    # The URL Twilio uses to reach us; signatures are computed over it.
    public_url: str = "http://127.0.0.1:8080"
    # Bearer token for the API; the dashboard logs in with it too. Empty: the API
    # and dashboard stay shut; else at least 16 printable ASCII characters.
    api_token: Secret = Secret("")
    # A client address with this many wrong tokens/logins within the window (seconds)
    # gets 429 with Retry-After until the oldest leaves the window.
    auth_max_failures: int = 10
    auth_failure_window: float = 60.0
    # Mark the session cookie Secure even on plain HTTP: set it when a TLS proxy
    # in front of the gateway talks HTTP to it.
    secure_cookies: bool = False
    # Load balancers or proxies in front of the gateway (addresses or networks, e.g.
    # "10.0.0.0/24"): from them, the client's address is read from X-Forwarded-For,
    # so that limits and the audit log see the client, not the proxy. Empty: none.
    trusted_proxies: tuple[str, ...] = ()
    # A person's session ends after this many seconds without a request, and this
    # many seconds after the login whatever happens (and at logout).
    session_idle: float = 1800.0
    session_lifetime: float = 43200.0
    # Failed logins of one account name, and from one client address, within the
    # window (seconds) before further logins wait; counted in the store, so a
    # restart does not forget them.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window: float = 900.0


@dataclass(frozen=True)
class CallbacksSection:
    # (How long after the service the first callback is due is set per kind in
    # the catalogue of business: gateway/callbacks/catalogue.toml.)
    # Local-time windows in which citizens may be called, and days never called.
    windows: str = "09:00-12:00,14:00-20:30"
    excluded_weekdays: tuple[int, ...] = ()  # ISO weekdays: 1 = Monday … 7 = Sunday
    excluded_dates: tuple[str, ...] = ()  # "2026-10-01", public holidays
    # Trunk lines for callbacks of a PBX that does not set its own pbx.lines.
    max_concurrent_calls: int = 4
    max_attempts: int = 3  # calls per round before the SMS fallback
    retry_spacing_minutes: float = 30.0
    ring_timeout_seconds: float = 30.0
    originate_context: str = "callback"
    # Caller ID on every callback, as Asterisk takes it: '"Name" <number>' (the
    # bureau's published number, so citizens recognise and trust the call).
    caller_id: str = ""
    # After the last unanswered call a rating request goes by SMS, valid this long.
    sms_fallback: bool = True
    sms_valid_hours: float = 48.0
    # Deadline of a rectification order at levels 1..4, in hours.
    order_deadline_hours: str = "72,48,24,24"
    # After a chief reports a rectification done, the citizen is called again this much later.
    recall_delay_hours: float = 2.0
    # Level 3 and level 4 recipients: the chiefs of these units (codes in the unit tree).
    supervision_unit: str = "LZ-DUCHA"
    leadership_units: tuple[str, ...] = ("LZ-LEAD", "LZ-JIJIAN")
    poll_seconds: float = 5.0
    # A served item must have been served within this many days (and not in the
    # future beyond clock skew) to be accepted.
    served_max_age_days: int = 30


@dataclass(frozen=True)
class IvrSection:
    # Flow files (*.yaml) and the prompt catalogue, relative to the working folder.
    flows_dir: str = "flows"
    prompts: str = "recordings/prompts.yaml"
    # Callers' voice messages go under <data_dir>/<messages_dir>/YYYY/MM/DD/.
    messages_dir: str = "messages"


@dataclass(frozen=True)
class HotlineSection:
    # Local time (gateway.timezone); several spans allowed: "08:30-12:00,13:30-17:30".
    working_hours: str = "08:30-17:30"
    working_days: tuple[int, ...] = (1, 2, 3, 4, 5)  # ISO weekdays, 1 = Monday
    holidays: tuple[str, ...] = ()  # YYYY-MM-DD days closed all day


@dataclass(frozen=True)
class AppealsSection:
    # A new submission by the same citizen joins their open case of the same category
    # and unit hint made within this many days, or whose text is this similar
    # (character-bigram Jaccard, 0–1; measured in gateway/appeals/similarity.py).
    repeat_window_days: int = 30
    similarity_threshold: float = 0.3
    # A case's owner when the submission hints at none: "category=UNIT" items, e.g.
    # ["complaint=LZ-DUCHA"]; a category not listed stays unassigned for the desk.
    category_units: tuple[str, ...] = ()
    # Each intake channel's own credential, sent as X-Channel-Token beside the API's
    # bearer token. Written [appeals.channels.<name>] token = "..." in the file,
    # GATEWAY_APPEALS_CHANNELS_<NAME>_TOKEN in the environment. Empty: the channel is shut.
    channels_web_token: Secret = Secret("")
    channels_wechat_token: Secret = Secret("")
    channels_letter_token: Secret = Secret("")
    channels_visit_token: Secret = Secret("")
    channels_12345_token: Secret = Secret("")
    # Chasing (gateway/appeals/chasing.py): the owner unit's chief is reminded once when
    # a deadline (to accept, to answer) falls before the end of this many working days
    # after today (0: on the deadline's own day); an overdue case climbs the four levels
    # of a rectification order, given this many working days at each.
    chase_remind_working_days: int = 1
    chase_level_working_days: str = "1,1,1,1"
    chase_poll_seconds: float = 60.0


@dataclass(frozen=True)
class BookingsSection:
    # The booking clients' machine credential (the service web sites, WeChat), sent as
    # X-Channel-Token beside the API's bearer token. Empty: bookings are shut.
    token: Secret = Secret("")
    # The evening-before reminder goes at this local time the day before the slot
    # (earlier if that is inside sms quiet hours; see gateway/bookings/service.py).
    reminder_time: str = "19:00"
    # How far ahead a slot may be booked.
    max_days_ahead: int = 90
    # The number a citizen calls to change or cancel, quoted in the texts.
    hotline: str = "9600110"
    poll_seconds: float = 30.0


@dataclass(frozen=True)
class ReportsSection:
    # The three colours: each unit over the last window_days local days. A unit is red
    # when any red rule holds, yellow when any yellow rule holds, else green. Satisfaction
    # below red_satisfaction is red, below green_satisfaction yellow; a count at or above
    # its threshold (dissatisfied ratings, overdue orders, overdue cases) is yellow or
    # red; 0 turns a count's rule off.
    window_days: int = 30
    green_satisfaction: float = 0.95
    red_satisfaction: float = 0.90
    yellow_dissatisfied: int = 5
    red_dissatisfied: int = 20
    yellow_overdue_orders: int = 1
    red_overdue_orders: int = 3
    yellow_overdue_cases: int = 1
    red_overdue_cases: int = 3
    # The daily log of the day before is made at daily_at (local time) every morning,
    # the weekly report of the week before on weekly_weekday at the same time, and the
    # agenda of each sub-bureau's and county bureau's meeting (meeting_weekdays) at
    # agenda_at the evening before.
    daily_at: str = "07:30"
    weekly_weekday: int = 1
    agenda_at: str = "18:00"
    meeting_weekdays: tuple[int, ...] = (2, 4, 6)
    # Officer codes of the leaders texted the daily log and the weekly report; empty:
    # every officer whose role is "leader".
    leaders: tuple[str, ...] = ()
    # The PDFs' CJK font (TrueType/OpenType, or a collection); empty: the first found of
    # Debian's fonts-noto-cjk, fonts-wqy-zenhei, fonts-wqy-microhei.
    pdf_font: str = ""
    # Folder of the made reports, under data_dir when relative.
    folder: str = "reports"


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection = field(default_factory=GatewaySection)
    store: StoreSection = field(default_factory=StoreSection)
    pbx: tuple[PbxSection, ...] = (PbxSection(),)
    agi: AgiSection = field(default_factory=AgiSection)
    sms: SmsSection = field(default_factory=SmsSection)
    web: WebSection = field(default_factory=WebSection)
    ivr: IvrSection = field(default_factory=IvrSection)
    hotline: HotlineSection = field(default_factory=HotlineSection)
    callbacks: CallbacksSection = field(default_factory=CallbacksSection)
    appeals: AppealsSection = field(default_factory=AppealsSection)
    bookings: BookingsSection = field(default_factory=BookingsSection)
    reports: ReportsSection = field(default_factory=ReportsSection)
    # Where the settings came from, for messages: "defaults" or a file name.
    source: str = "defaults"

    @property
    def store_path(self) -> Path:
        """The SQLite file, for what only SQLite has (the single-gateway lock file, the
        demo). With ``store.url`` set, such a command refuses in one line instead of quietly
        using a SQLite file beside PostgreSQL; everything else opens :attr:`store_location`."""
        if self.store.url:
            raise ConfigError(
                "store.url",
                self.source,
                "this command works on the SQLite file only; unset store.url to use it",
            )
        if self.store.path:
            return Path(self.store.path)
        return self.gateway.data_dir / "gateway.sqlite3"

    def lines_of(self, pbx: PbxSection) -> int:
        """How many callback calls may be up at once on ``pbx``: its ``lines``, else
        ``callbacks.max_concurrent_calls`` (the setting of the one-PBX gateway)."""
        return self.callbacks.max_concurrent_calls if pbx.lines is None else pbx.lines

    @property
    def store_location(self) -> Path | str:
        """Where the store is: ``store.url`` (PostgreSQL) if set, else the SQLite file."""
        return self.store.url.reveal() or self.store_path

    @property
    def on_sqlite(self) -> bool:
        """Whether the store is the SQLite file (store.url unset)."""
        return not self.store.url


SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name != "source"
}


def load(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Build the configuration from its layers. ``env`` is ``os.environ`` in production."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("(file)", source, "no such file") from None
        except UnicodeDecodeError:
            raise ConfigError("(file)", source, "not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError("(file)", source, f"cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("(file)", source, f"not valid TOML: {exc}") from None
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(name, source, f"unknown section (known: {', '.join(SECTIONS)})")
    if path is not None:
        _anchor_paths(raw, path.parent)
    _flatten_channels(raw, source)

    sections: dict[str, Any] = {}
    for name, hint in SECTIONS.items():
        if typing.get_origin(hint) is tuple:
            item_type = typing.get_args(hint)[0]
            items = raw.get(name, [{}])
            if not isinstance(items, list):
                raise ConfigError(name, source, "must be an array of tables ([[" + name + "]])")
            built = []
            for index, item in enumerate(items):
                label = f"{name}[{index}]"
                values = _section(item_type, item, label, source)
                built.append(values)
            sections[name] = built
        else:
            sections[name] = _section(hint, raw.get(name, {}), name, source)

    _apply_env(sections, env or {})
    _apply_overrides(sections, overrides)
    _check_pbx_names(sections["pbx"], source)

    _check_pairs(sections, source)
    kwargs: dict[str, Any] = {}
    for name, hint in SECTIONS.items():
        if typing.get_origin(hint) is tuple:
            item_type = typing.get_args(hint)[0]
            objs = tuple(item_type(**v) for v in sections[name])
            for index, obj in enumerate(objs):
                if isinstance(obj, PbxSection):
                    _check_charset(obj.charset, f"{name}[{index}].charset", source)
            kwargs[name] = objs
        else:
            kwargs[name] = hint(**sections[name])
    _check_store(kwargs["store"], source)
    if not kwargs["gateway"].name:  # empty: derived from the host name
        kwargs["gateway"] = dataclasses.replace(kwargs["gateway"], name=default_name())
    return Config(**kwargs, source=source)


def _check_pbx_names(tables: list[Any], source: str) -> None:
    """Each [[pbx]] table names a PBX of its own. Names are compared without case, as
    their GATEWAY_PBX_<NAME>_… environment settings are: "Main" and "main" are one."""
    if not tables:
        raise ConfigError("pbx", source, "at least one [[pbx]] table is needed")
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        name = table["name"]
        first = seen.setdefault(name.lower(), index)
        if first != index:
            earlier = tables[first]["name"]
            same = "" if earlier == name else f" (the same as {earlier!r} but for case)"
            raise ConfigError(
                f"pbx[{index}].name",
                source,
                f"PBX {name!r} is named twice{same}: [[pbx]] tables {first + 1} and"
                f" {index + 1}; give each PBX its own name",
            )


def _check_store(store: StoreSection, source: str) -> None:
    url = store.url.reveal()
    if not url:
        return
    if not url.startswith(("postgresql://", "postgres://")):
        # The value may hold a password: the message does not repeat it.
        raise ConfigError("store.url", source, "must be a postgresql://… URL (empty: SQLite)")
    if store.path:
        raise ConfigError("store.url", source, "set store.url or store.path, not both")


#: Keys that name a file or folder. Written relative in a configuration file, they are
#: read from that file's folder, so `gateway -c /srv/site/gateway.toml` works from
#: anywhere; from the environment or the command line, from the working folder.
PATH_KEYS = (
    ("gateway", "data_dir"),
    ("store", "path"),
    ("ivr", "flows_dir"),
    ("ivr", "prompts"),
    ("reports", "pdf_font"),
)


def _anchor_paths(raw: dict[str, Any], base: Path) -> None:
    for section, key in PATH_KEYS:
        table = raw.get(section)
        if not isinstance(table, dict):
            continue  # absent, or malformed: _section says so
        value = table.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            table[key] = str(base / value)


def _flatten_channels(raw: dict[str, Any], source: str) -> None:
    """``[appeals.channels.web] token = ...`` → the flat key ``appeals.channels_web_token``."""
    appeals = raw.get("appeals")
    if not isinstance(appeals, dict) or "channels" not in appeals:
        return
    channels = appeals.pop("channels")
    if not isinstance(channels, dict):
        raise ConfigError("appeals.channels", source, "must be a table of channels")
    for name, table in channels.items():
        if not isinstance(table, dict):
            raise ConfigError(f"appeals.channels.{name}", source, "must be a table")
        for key, value in table.items():
            appeals[f"channels_{name}_{key}"] = value


def _check_charset(charset: str, key: str, source: str) -> None:
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ConfigError(key, source, f"unknown charset {charset!r} (e.g. utf-8, gbk)") from None


def _section(cls: type[Any], raw: Any, label: str, source: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(label, source, "must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"{label}.{key}", source, f"unknown key (known: {', '.join(sorted(known))})"
            )
        values[key] = _checked(cls, key, value, hints[key], f"{label}.{key}", source, False)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            if f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
                continue
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{label}.{f.name}", source, "missing")
            values[f.name] = f.default
    return values


def _coerce(hint: Any, value: Any, key: str, source: str, *, from_text: bool) -> Any:
    """Check (from a file) or convert (from text: environment, command line) one value."""
    if isinstance(hint, types.UnionType):  # e.g. str | None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is Secret:
            if not isinstance(value, str):
                raise TypeError("a string")
            return Secret(value)
        if hint is Path:
            if not isinstance(value, str):
                raise TypeError("a path string")
            return Path(value)
        if hint is bool:
            if from_text and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise TypeError("true or false")
            if not isinstance(value, bool):
                raise TypeError("true or false")
            return value
        if hint is int:
            if from_text and isinstance(value, str):
                return int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("an integer")
            return value
        if hint is float:
            if from_text and isinstance(value, str):
                return float(value)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError("a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise TypeError("a string")
            return value
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            if from_text and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise TypeError("an array")
            return tuple(_coerce(item, v, key, source, from_text=from_text) for v in value)
    except (TypeError, ValueError) as exc:
        expected = str(exc) if isinstance(exc, TypeError) else f"a value of type {hint.__name__}"
        raise ConfigError(key, source, f"must be {expected}, got {value!r}") from None
    raise ConfigError(key, source, f"unsupported type {hint!r}")


def _apply_env(sections: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, text in env.items():
        if not var.startswith("GATEWAY_"):
            continue
        rest = var[len("GATEWAY_") :].lower()
        for name, hint in SECTIONS.items():
            if not rest.startswith(name + "_"):
                continue
            tail = rest[len(name) + 1 :]
            if typing.get_origin(hint) is tuple:
                item_type = typing.get_args(hint)[0]
                for item in sections[name]:
                    prefix = str(item["name"]).lower() + "_"
                    if tail.startswith(prefix):
                        _set(item, item_type, tail[len(prefix) :], text, var, "environment")
            else:
                _set(sections[name], hint, tail, text, var, "environment")


def _apply_overrides(sections: dict[str, Any], overrides: Sequence[str]) -> None:
    for override in overrides:
        target, sep, text = override.partition("=")
        if not sep or "." not in target:
            raise ConfigError(override, "command line", "use --set section.key=value")
        name, _, key = target.partition(".")
        hint = SECTIONS.get(name)
        if hint is None:
            raise ConfigError(target, "command line", "unknown section")
        if typing.get_origin(hint) is tuple:
            # --set pbx.main.secret=...
            item_name, _, key = key.partition(".")
            matches = [i for i in sections[name] if i["name"] == item_name]
            if not matches:
                raise ConfigError(target, "command line", f"no {name} named {item_name!r}")
            _set(matches[0], typing.get_args(hint)[0], key, text, target, "command line")
        else:
            _set(sections[name], hint, key, text, target, "command line")


def _set(
    values: dict[str, Any], cls: type[Any], key: str, text: str, label: str, source: str
) -> None:
    hints = typing.get_type_hints(cls)
    if key not in hints:
        raise ConfigError(label, source, f"unknown key {key!r}")
    values[key] = _checked(cls, key, text, hints[key], label, source, True)


# -- range and form of each key ------------------------------------------------------

Rule = Callable[[Any], str | None]  # the reason a value is refused, or None


def _between(low: float, high: float) -> Rule:
    def rule(value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number from {low:g} to {high:g}"
        return None if low <= value <= high else f"must be from {low:g} to {high:g}"

    return rule


def _positive(high: float) -> Rule:
    def rule(value: Any) -> str | None:
        if not math.isfinite(value) or not 0 < value <= high:
            return f"must be more than 0 and at most {high:g}"
        return None

    return rule


def _one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return rule


def _matches(pattern: str, what: str) -> Rule:
    compiled = re.compile(pattern)

    def rule(value: Any) -> str | None:
        return None if compiled.fullmatch(str(value)) else f"must be {what}"

    return rule


def _timezone(value: Any) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "must be a timezone name of the IANA database, such as Asia/Shanghai"
    return None


def _dates(values: Any) -> str | None:
    for value in values:
        try:
            date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a date YYYY-MM-DD"
    return None


def _networks(values: Any) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IP address or network (e.g. 10.0.0.0/24)"
    return None


def _weekdays(values: Any) -> str | None:
    bad = [v for v in values if not 1 <= v <= 7]
    return f"{bad} are not ISO weekdays 1 (Monday) … 7 (Sunday)" if bad else None


_HHMM = r"(?:[01]\d|2[0-3]):[0-5]\d"
_SPANS = rf"\s*{_HHMM}\s*-\s*(?:{_HHMM}|24:00)\s*(?:,\s*{_HHMM}\s*-\s*(?:{_HHMM}|24:00)\s*)*"
_HOURS = r"\s*\d+(?:\.\d+)?\s*(?:,\s*\d+(?:\.\d+)?\s*){3}"
_URL = r"https?://[^\s/?#]+(?::\d{1,5})?(?:/[^\s]*)?"
_HOST = r"[A-Za-z0-9._:\[\]-]+"  # a name, an IPv4 or an IPv6 address
_NAME = r"[A-Za-z0-9_-]{1,32}"
# E.164 (+ and 8–15 digits) or an alphanumeric sender id (1–11 letters, digits,
# spaces; at least one letter), as Twilio accepts in From.
_SENDER = r"\+[1-9]\d{7,14}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9 ]{0,10}"
MIN_TOKEN_LENGTH = 16


def _token(value: Any) -> str | None:
    text = value.reveal()
    if not text:
        return None  # the API and dashboard stay shut
    if len(text) < MIN_TOKEN_LENGTH or not text.isascii() or not text.isprintable():
        return f"must be empty or at least {MIN_TOKEN_LENGTH} printable ASCII characters"
    if " " in text or len(set(text)) < 8:
        return "is too weak: no spaces and at least 8 different characters"
    return None


def _not_empty(value: Any) -> str | None:
    return None if str(value).strip() else "must not be empty"


def _number_slot(value: Any) -> str | None:
    return None if "{number}" in value else "must contain {number}"


_PORT = _between(1, 65535)
_SECONDS = _positive(86400)

# "section.key" → rule. Keys of the PBX tables are "pbx.key".
RULES: dict[str, Rule] = {
    "gateway.data_dir": _not_empty,
    "gateway.timezone": _timezone,
    "gateway.log_level": _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "store.lock_timeout": _positive(3600),
    "store.pool_size": _between(2, 100),
    "gateway.name": lambda v: None if v == "" else _matches(NAME_PATTERN, NAME_FORM)(v),
    "store.max_clock_skew": _between(0.1, 3600),
    "pbx.name": _matches(_NAME, "1–32 letters, digits, '_' or '-'"),
    "pbx.host": _matches(_HOST, "a host name or an IP address"),
    "pbx.port": _PORT,
    "pbx.username": _not_empty,
    "pbx.auth": _one_of("md5", "plain"),
    "pbx.ping_interval": _SECONDS,
    "pbx.ping_timeout": _SECONDS,
    "pbx.action_timeout": _SECONDS,
    "pbx.connect_timeout": _SECONDS,
    "pbx.reconnect_min": _SECONDS,
    "pbx.reconnect_max": _SECONDS,
    "pbx.login_attempts": _between(1, 1000),
    "pbx.dial_string": _number_slot,
    "pbx.lines": _between(0, 1000),
    "pbx.hotline_context": _not_empty,
    "agi.listen_host": _matches(_HOST, "a host name or an IP address of this machine"),
    "agi.listen_port": _between(0, 65535),
    "sms.api_base_url": _matches(_URL, "an http:// or https:// URL"),
    "sms.from_number": lambda v: (
        None if v == "" else _matches(_SENDER, "an E.164 number (+8613…) or a sender id")(v)
    ),
    "sms.rate_per_second": _positive(10000),
    "sms.http_timeout": _SECONDS,
    "sms.max_attempts": _between(1, 100),
    "sms.backoff_min": _SECONDS,
    "sms.backoff_max": _SECONDS,
    "sms.quiet_start": _matches(_HHMM, "a local time HH:MM"),
    "sms.quiet_end": _matches(_HHMM, "a local time HH:MM"),
    "sms.workers": _between(1, 64),
    "sms.lookup_delay": _between(0, 86400),
    "sms.poll_interval": _SECONDS,
    "sms.status_refresh": _SECONDS,
    "web.host": _matches(_HOST, "a host name or an IP address of this machine"),
    "web.port": _PORT,
    "web.public_url": _matches(_URL, "an http:// or https:// URL"),
    "web.api_token": _token,
    "web.auth_max_failures": _between(1, 10000),
    "web.auth_failure_window": _SECONDS,
    "web.session_idle": _between(60, 86400),
    "web.session_lifetime": _between(60, 30 * 86400),
    "web.login_max_failures": _between(1, 1000),
    "web.login_max_failures_per_address": _between(1, 10000),
    "web.login_failure_window": _between(1, 30 * 86400),
    "web.trusted_proxies": _networks,
    "callbacks.windows": _matches(_SPANS, "spans HH:MM-HH:MM separated by commas"),
    "callbacks.excluded_weekdays": _weekdays,
    "callbacks.excluded_dates": _dates,
    "callbacks.max_concurrent_calls": _between(1, 1000),
    "callbacks.max_attempts": _between(1, 20),
    "callbacks.retry_spacing_minutes": _positive(10080),
    "callbacks.ring_timeout_seconds": _between(5, 600),
    "callbacks.originate_context": _not_empty,
    "callbacks.sms_valid_hours": _positive(8760),
    "callbacks.order_deadline_hours": _matches(_HOURS, "four numbers of hours, as 72,48,24,24"),
    "callbacks.recall_delay_hours": _between(0, 8760),
    "callbacks.poll_seconds": _positive(3600),
    "callbacks.served_max_age_days": _between(1, 3650),
    "ivr.flows_dir": _not_empty,
    "ivr.prompts": _not_empty,
    "ivr.messages_dir": _not_empty,
    "hotline.working_hours": _matches(_SPANS, "spans HH:MM-HH:MM separated by commas"),
    "hotline.working_days": _weekdays,
    "hotline.holidays": _dates,
    "appeals.repeat_window_days": _between(1, 3650),
    "appeals.similarity_threshold": _between(0.01, 1),
    "appeals.chase_remind_working_days": _between(0, 30),
    "appeals.chase_level_working_days": _matches(
        r"\s*[1-9]\d?\s*(?:,\s*[1-9]\d?\s*){3}",
        "four whole numbers (1–99) of working days, as 1,1,1,1",
    ),
    "appeals.chase_poll_seconds": _positive(3600),
    "bookings.token": _token,
    "bookings.reminder_time": _matches(_HHMM, "a local time HH:MM"),
    "bookings.max_days_ahead": _between(1, 366),
    "bookings.hotline": _matches(r"[0-9-]{3,12}", "a number of 3–12 digits or '-'"),
    "bookings.poll_seconds": _positive(3600),
    "reports.window_days": _between(1, 366),
    "reports.green_satisfaction": _between(0, 1),
    "reports.red_satisfaction": _between(0, 1),
    **{
        f"reports.{key}": _between(0, 100000)
        for key in (
            "yellow_dissatisfied",
            "red_dissatisfied",
            "yellow_overdue_orders",
            "red_overdue_orders",
            "yellow_overdue_cases",
            "red_overdue_cases",
        )
    },
    "reports.daily_at": _matches(_HHMM, "a local time HH:MM"),
    "reports.weekly_weekday": _between(1, 7),
    "reports.agenda_at": _matches(_HHMM, "a local time HH:MM"),
    "reports.meeting_weekdays": _weekdays,
    "reports.folder": _not_empty,
    **{
        f"appeals.channels_{name}_token": _token
        for name in ("web", "wechat", "letter", "visit", "12345")
    },
}

# (section, smaller key, larger key): the first may not exceed the second.
_PAIRS = (
    ("pbx", "reconnect_min", "reconnect_max"),
    ("sms", "backoff_min", "backoff_max"),
    ("web", "session_idle", "session_lifetime"),
    ("reports", "red_satisfaction", "green_satisfaction"),
)


def _section_name(cls: type[Any]) -> str:
    for name, hint in SECTIONS.items():
        if hint is cls or typing.get_args(hint)[:1] == (cls,):
            return name
    raise KeyError(cls)


def _checked(
    cls: type[Any], key: str, value: Any, hint: Any, label: str, source: str, from_text: bool
) -> Any:
    """``value`` converted to ``hint`` and checked against its rule in :data:`RULES`."""
    converted = _coerce(hint, value, label, source, from_text=from_text)
    if key == "log_level" and isinstance(converted, str):
        converted = converted.upper()
    rule = RULES.get(f"{_section_name(cls)}.{key}")
    reason = rule(converted) if rule is not None else None
    if reason is not None:
        shown = "***" if isinstance(converted, Secret) else repr(value)
        raise ConfigError(label, source, f"{reason}, got {shown}")
    return converted


def _check_pairs(sections: dict[str, Any], source: str) -> None:
    for name, low, high in _PAIRS:
        tables = sections[name] if isinstance(sections[name], list) else [sections[name]]
        for index, values in enumerate(tables):
            if values[low] > values[high]:
                label = f"{name}[{index}]" if isinstance(sections[name], list) else name
                raise ConfigError(
                    f"{label}.{low}",
                    source,
                    f"must not exceed {high} ({values[high]:g}), got {values[low]:g}",
                )


def warnings_of(config: Config) -> list[str]:
    """Settings that work but weaken the gateway, one line each, for the start-up log."""
    found = []
    if not any(config.lines_of(pbx) for pbx in config.pbx):
        found.append(
            f"{config.source}: no PBX has lines for callbacks (pbx.lines = 0 on every one):"
            " no callback will be placed"
        )
    for pbx in config.pbx:
        if pbx.auth == "plain":
            found.append(
                f'{config.source}: pbx {pbx.name}: auth = "plain" sends the AMI secret in'
                ' clear; use "md5" unless the PBX link is private'
            )
    return found
