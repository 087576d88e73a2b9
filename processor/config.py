"""Configuration from the environment (or a .env file), read once per process.

The .env file read is the one PROCESSOR_ENV_FILE names (set but empty: none), or else `.env` in the working directory;
never one found anywhere else, such as a parent directory or the installed package's.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, tzinfo
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iso4217 import Currency
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from processor.db.roles import check_role_name
from processor.domain.book import Policy
from processor.domain.errors import InvalidValue
from processor.domain.money import MINOR_UNITS, parse_currency

_POLICY = Policy()  # the domain's defaults, so they are stated once


class Settings(BaseSettings):
    # The .env file is chosen by env_file() in settings_customise_sources, not here.
    model_config = SettingsConfigDict(env_prefix="PROCESSOR_", extra="ignore")

    # Only to be checked: the file is read before the settings are (settings_customise_sources).
    env_file: str | None = None

    database_url: str = Field(
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/abcbank",
        validation_alias=AliasChoices("DATABASE_URL", "PROCESSOR_DATABASE_URL"),
    )
    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("CELERY_BROKER_URL", "PROCESSOR_CELERY_BROKER_URL"),
    )
    default_currency: str = "GBP"
    # Comma-separated in the environment: PROCESSOR_CURRENCIES=GBP,EUR
    currencies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["GBP", "EUR", "USD"])
    # An IANA name: the zone times are shown in, and whose calendar month the savings limit counts in.
    timezone: str = "UTC"
    savings_monthly_outgoing_limit: int = Field(default=_POLICY.savings_monthly_outgoing_limit, ge=0)
    reward_points_per_unit: int = Field(default=_POLICY.reward_points_per_unit, ge=0)
    reward_unit: Decimal = Field(default=_POLICY.reward_unit, gt=0)
    # Who the operator CLI records in the audit log when --actor is not given.
    actor: str = Field(default_factory=lambda: _login_name())
    # Workers (see processor/celery.py for why these values).
    visibility_timeout: int = Field(default=300, ge=1)
    retry_max: int = Field(default=12, ge=0)
    retry_backoff_max: int = Field(default=60, ge=1)
    lock_timeout: float = Field(default=5.0, gt=0)
    statement_timeout: float = Field(default=30.0, gt=0)
    # A task still running near this limit is interrupted, rolled back and retried (task_soft_time_limit); one
    # that cannot be interrupted is killed at it and held for operators (retries_spent).
    task_time_limit: int = Field(default=60, ge=2)
    worker_concurrency: int | None = Field(default=None, ge=1)
    # Single-payment messages a worker applies in one transaction (1: none; at most a payments.batch's 1,000),
    # gathered for group_wait_ms after the first, or longer while every pool process is busy (processor/grouping.py).
    group_size: int = Field(default=50, ge=1, le=1000)
    group_wait_ms: float = Field(default=5.0, ge=0)
    # Unacked messages a worker holds per pool process; unset, enough for a group running and the next filling.
    prefetch_multiplier: int | None = Field(default=None, ge=1)
    log_format: Literal["text", "json"] = "text"
    # Unset: the CLI logs warnings only (its output is the result), long-running processes log INFO.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    # The database roles `processor db roles` creates and `processor db upgrade` grants to (processor/db/roles.py).
    db_owner_role: str = "abcbank_owner"
    db_worker_role: str = "abcbank_worker"
    db_operator_role: str = "abcbank_operator"
    db_reader_role: str = "abcbank_reader"
    # The operator console (processor/web/console). Unset, the secret key is a random one per process: sessions then
    # end when it restarts, and a server of several processes needs it set, the same for all.
    web_secret_key: SecretStr | None = None
    # False only to use the console over plain http on a host other than this one (browsers send a Secure cookie
    # to http://127.0.0.1 and http://localhost, never to other http addresses).
    web_cookie_secure: bool = True
    # A session ends after this many minutes without a request.
    web_session_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Login attempts from one address (Flask-Limiter's notation), counted in web_ratelimit_storage (unset: the
    # broker's Redis, so that every server process counts the same attempts).
    web_login_rate_limit: str = "10 per minute"
    web_ratelimit_storage: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, as before; the file is the one env_file() chooses, and only that.
        dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file(), env_file_depth=0)
        return init_settings, env_settings, dotenv, file_secret_settings

    @field_validator("env_file")
    @classmethod
    def _check_env_file(cls, value: str | None) -> str | None:
        if value and not Path(value).expanduser().is_file():
            raise ValueError(f"{value!r} is not a file (unset it to read .env in the working directory)")
        return value

    @field_validator("db_owner_role", "db_worker_role", "db_operator_role", "db_reader_role")
    @classmethod
    def _check_role(cls, value: str) -> str:
        return check_role_name(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                f"{redacted(value)!r} is not a database URL such as postgresql+psycopg2://user@host:5432/abcbank"
            ) from None
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"the processor needs PostgreSQL, not {url.get_backend_name()}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return [code.strip() for code in value.split(",") if code.strip()]
        return value

    @field_validator("currencies")
    @classmethod
    def _check_currencies(cls, value: list[str]) -> list[str]:
        return [_iso_currency(code) for code in value]

    @field_validator("default_currency")
    @classmethod
    def _check_default_currency(cls, value: str) -> str:
        return _iso_currency(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        if value != "UTC":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone name such as 'UTC' or 'Europe/London'") from None
        return value

    @cached_property
    def zone(self) -> tzinfo:
        """PROCESSOR_TIMEZONE as a tzinfo."""
        return UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _check_redelivery_timing(self) -> Settings:
        # Redis hands an unacked message to another worker after the visibility timeout. A retry waits unacked
        # in the worker for its countdown (prefetch does not limit those), then may run up to the time limit:
        # a timeout shorter than both would deliver it twice.
        if self.visibility_timeout <= self.retry_backoff_max + self.task_time_limit:
            raise ValueError(
                f"PROCESSOR_VISIBILITY_TIMEOUT ({self.visibility_timeout} s) must be longer than "
                f"PROCESSOR_RETRY_BACKOFF_MAX ({self.retry_backoff_max} s) plus "
                f"PROCESSOR_TASK_TIME_LIMIT ({self.task_time_limit} s)"
            )
        if self.statement_timeout >= self.task_soft_time_limit():
            raise ValueError(
                f"PROCESSOR_STATEMENT_TIMEOUT ({self.statement_timeout:g} s) must be shorter than the soft time "
                f"limit ({self.task_soft_time_limit():g} s, PROCESSOR_TASK_TIME_LIMIT less its margin)"
            )
        return self

    @field_validator("celery_broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it is the check: a malformed port raises here, not in kombu
        except ValueError:
            parts = None
        if scheme not in ("redis", "rediss", "sentinel") or parts is None:
            raise ValueError(f"{redacted(value)!r} is not a Redis URL such as redis://127.0.0.1:6379/0")
        return value

    def task_soft_time_limit(self) -> float:
        """Seconds after which a running task is interrupted, rolled back and retried."""
        # The margin before the hard limit is for the rollback; a task stuck in C code (a query) does not see the
        # interruption, which is why the statement timeout is shorter still.
        return float(self.task_time_limit - min(10, max(1, self.task_time_limit // 5)))

    def worker_prefetch_multiplier(self) -> int:
        """Celery's worker_prefetch_multiplier: a group can only gather messages the worker has prefetched."""
        if self.prefetch_multiplier is not None:
            return self.prefetch_multiplier
        return 1 if self.group_size == 1 else 2 * self.group_size

    def policy(self) -> Policy:
        return Policy(
            savings_monthly_outgoing_limit=self.savings_monthly_outgoing_limit,
            reward_points_per_unit=self.reward_points_per_unit,
            reward_unit=self.reward_unit,
            zone=self.zone,
        )


def env_file() -> Path | None:
    """The .env file to read: the one PROCESSOR_ENV_FILE names (set but empty: none), else .env in the working
    directory. A relative path is taken from the working directory; a missing file is skipped here and refused by
    the env_file setting's check."""
    named = os.environ.get("PROCESSOR_ENV_FILE")
    if named is not None:
        return Path(named).expanduser() if named else None
    return Path.cwd() / ".env"


def _iso_currency(code: str) -> str:
    """A code that ISO 4217 lists with the minor unit amounts carry; refused with the reason otherwise."""
    try:
        code = parse_currency(code, "currency")
    except InvalidValue as error:
        raise ValueError(error.message) from None
    try:
        minor_unit = Currency(code).exponent
    except ValueError:
        raise ValueError(f"{code} is not an ISO 4217 currency code") from None
    if minor_unit != MINOR_UNITS:
        places = "no minor unit" if minor_unit is None else f"{minor_unit} decimal places"
        raise ValueError(f"{code} has {places} in ISO 4217; amounts here carry exactly {MINOR_UNITS}")
    return code


def describe(error: ValidationError) -> str:
    """A configuration error in one line, each bad setting by its variable's name; no value is quoted whole."""
    return "; ".join(
        (f"{env_name(str(e['loc'][0]))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
        for e in error.errors()
    )


def redacted(url: str) -> str:
    """A URL as an error may quote it: any password replaced, however malformed the rest is."""
    return re.sub(r"(://[^/@]*?:)[^/@]*@", r"\1***@", url)


def _login_name() -> str:
    # getuser() raises when the uid has no passwd entry and USER/LOGNAME are unset, as in many containers.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def env_name(field: str) -> str:
    """The environment variable that sets a settings field."""
    name = field.upper()
    return name if name in ("DATABASE_URL", "CELERY_BROKER_URL") else f"PROCESSOR_{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
