"""`processor stats`: outcomes by status and reason over a period, conflicts, and the messages held for operators;
times in RFC 3339 in PROCESSOR_TIMEZONE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processor.cli import cli
from processor.services.stats import outcome_stats
from tests.builders import UowFactory, make_account, pay, tamper
from tests.clis import invoke, invoke_json
from tests.conftest import setting
from tests.integration.test_held import hold
from tests.requests import deposit, withdrawal

LONG_AGO = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)


def backdate(make_uow: UowFactory, table: str, column: str, moment: datetime) -> None:
    # A recorded outcome's time does not change (migration 0004): only a tampered database has old ones this young.
    tamper(make_uow, f"UPDATE {table} SET {column} = :at", at=moment)


class TestOutcomeStats:
    def test_counts_by_status_and_reason_with_conflicts_and_held(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="10.00")  # one applied deposit
        pay(make_uow, withdrawal(account, "50.00"), withdrawal(account, "60.00"), deposit("100000011", "1.00"))
        pay(make_uow, withdrawal(account, "1.00", reference="w-1"), withdrawal(account, "2.00", reference="w-1"))
        hold(make_uow)

        stats = outcome_stats(make_uow(), timedelta(hours=1))

        assert dict(stats.by_status) == {"applied": 2, "rejected": 3}
        assert dict(stats.rejected_by_reason) == {"insufficient_funds": 2, "account_not_found": 1}
        assert (stats.outcomes, stats.conflicts, stats.held_in_period, stats.held) == (5, 1, 1, 1)
        assert stats.oldest_held is not None
        assert stats.end - stats.start == timedelta(hours=1)

    def test_only_the_period_is_counted_but_every_held_message_is(self, make_uow: UowFactory) -> None:
        make_account(make_uow, balance="10.00")
        hold(make_uow)
        backdate(make_uow, "transactions", "created_at", LONG_AGO)
        backdate(make_uow, "held_messages", "at", LONG_AGO)
        hold(make_uow)

        recent = outcome_stats(make_uow(), timedelta(days=1))
        then = outcome_stats(make_uow(), LONG_AGO, LONG_AGO + timedelta(seconds=1))
        before = outcome_stats(make_uow(), LONG_AGO - timedelta(days=1), LONG_AGO)  # the end is excluded

        assert (recent.outcomes, recent.held_in_period, recent.held, recent.oldest_held) == (0, 1, 2, LONG_AGO)
        assert (then.by_status["applied"], then.held_in_period) == (1, 1)
        assert (before.outcomes, before.held_in_period) == (0, 0)


class TestStatsCommand:
    def test_json_in_the_configured_zone(self, make_uow: UowFactory) -> None:
        make_account(make_uow, balance="10.00")
        hold(make_uow)
        backdate(make_uow, "held_messages", "at", LONG_AGO)

        with setting("PROCESSOR_TIMEZONE", "Asia/Kolkata"):
            data = invoke_json(cli, "stats", "--from", "2020-01-01", "--to", "2030-12-31")

        assert data["start"] == "2020-01-01T00:00:00.000000+05:30"
        assert data["end"] == "2031-01-01T00:00:00.000000+05:30"  # --to a date includes that day
        assert data["oldest_held"] == "2020-01-15T17:30:00.000000+05:30"
        assert (data["outcomes"], data["by_status"], data["held"]) == (1, {"applied": 1, "rejected": 0}, 1)

    def test_table(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        pay(make_uow, withdrawal(account, "5.00"))

        result = invoke(cli, "stats", "--since", "2h")

        assert result.exit_code == 0, result.stderr
        lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
        assert "outcomes 1" in lines
        assert "insufficient_funds 1" in lines
        assert "held in all (no outcome) 0" in lines

    def test_a_malformed_duration_is_a_usage_error(self) -> None:
        result = invoke(cli, "stats", "--since", "yesterday")

        assert result.exit_code == 2
        assert "'yesterday' is not a duration such as 30m, 24h or 7d" in result.stderr
