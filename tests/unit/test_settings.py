"""Settings checked at start: currencies against ISO 4217 (amounts carry 2 places), the time zone against IANA."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import click
import pytest
from pydantic import ValidationError

from processor.cli import cli as processor_cli
from processor.config import Settings, describe
from submit.cli import cli as submit_cli
from tests.clis import error_line, invoke
from tests.conftest import setting


def refusal(**settings: str) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(**settings)  # type: ignore[arg-type]
    return describe(raised.value)


class TestCurrencies:
    def test_two_place_iso_currencies_are_accepted(self) -> None:
        assert Settings(currencies="GBP, EUR,USD,CHF").currencies == ["GBP", "EUR", "USD", "CHF"]

    @pytest.mark.parametrize(
        ("code", "why"),
        [
            ("JPY", "JPY has 0 decimal places in ISO 4217; amounts here carry exactly 2"),
            ("BHD", "BHD has 3 decimal places in ISO 4217; amounts here carry exactly 2"),
            ("XAU", "XAU has no minor unit in ISO 4217; amounts here carry exactly 2"),
            ("ABC", "ABC is not an ISO 4217 currency code"),
            ("gbp", "'gbp' is not an ISO 4217 code of three capital letters such as 'GBP'"),
        ],
    )
    def test_a_currency_amounts_cannot_carry_is_refused(self, code: str, why: str) -> None:
        assert refusal(currencies=f"GBP,{code}") == f"PROCESSOR_CURRENCIES: {why}"

    def test_the_default_currency_is_checked_too(self) -> None:
        assert refusal(default_currency="JPY").startswith("PROCESSOR_DEFAULT_CURRENCY: JPY has 0 decimal places")


class TestTimezone:
    def test_utc_by_default(self) -> None:
        assert Settings().zone is UTC

    def test_an_iana_name_is_the_zone_of_the_savings_month(self) -> None:
        settings = Settings(timezone="Asia/Tokyo")

        assert settings.zone == ZoneInfo("Asia/Tokyo")
        assert settings.policy().zone == ZoneInfo("Asia/Tokyo")

    @pytest.mark.parametrize("name", ["Europe/Lodnon", "GMT+25", "", "/etc/localtime", "../../etc/passwd"])
    def test_anything_else_is_refused_naming_the_variable(self, name: str) -> None:
        assert refusal(timezone=name) == (
            f"PROCESSOR_TIMEZONE: {name!r} is not an IANA time zone name such as 'UTC' or 'Europe/London'"
        )


class TestRefusedAtStart:
    """Each command says so in one line and stops, before it does anything."""

    @pytest.mark.parametrize(
        ("command", "args"),
        [(processor_cli, ["account", "show", "100000011"]), (submit_cli, ["status", "ref-1"])],
    )
    def test_a_currency_with_another_minor_unit(self, command: click.Command, args: list[str]) -> None:
        with setting("PROCESSOR_CURRENCIES", "GBP,JPY"):
            result = invoke(command, *args)

        assert result.exit_code == 1
        assert error_line(result.stderr) == (
            "error: configuration: PROCESSOR_CURRENCIES: JPY has 0 decimal places in ISO 4217; amounts here carry"
            " exactly 2"
        )

    def test_an_unknown_time_zone(self) -> None:
        with setting("PROCESSOR_TIMEZONE", "Mars/Olympus_Mons"):
            result = invoke(processor_cli, "verify")

        assert result.exit_code == 1
        assert error_line(result.stderr) == (
            "error: configuration: PROCESSOR_TIMEZONE: 'Mars/Olympus_Mons' is not an IANA time zone name such as"
            " 'UTC' or 'Europe/London'"
        )
