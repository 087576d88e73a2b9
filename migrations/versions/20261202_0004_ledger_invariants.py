"""Ledger invariants enforced by the database: raw SQL that would break the ledger is refused, not found later.

What `processor verify` checks after the fact, PostgreSQL now refuses as it happens (SQLSTATE 23514,
check_violation, with the rule's name as the constraint name):

- The entries of a transaction are written in one statement, in the database transaction that records it, only
  for an applied transaction, in its currency, and they sum to zero (statement trigger on ledger_entries; the sum
  is checked again at commit).
- Each entry's balance_after is its account's running total, and an account's balance always equals the
  balance_after of its newest entry: it may change only by the entries written for it (statement trigger on
  ledger_entries, row trigger on accounts, and the check at commit). Accounts open at zero; their currency is fixed.
- An applied transaction has entries and a rejected one none, at commit (a deferred constraint trigger per
  transaction, which also checks the two rules above once everything is written).
- Ledger entries and conflicting attempts are append-only; transactions cannot be deleted, and the columns that
  make a recorded outcome cannot change (columns added later may).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:40:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns of a recorded outcome as of this revision: the request as received, its outcome and its effect.
OUTCOME_COLUMNS = (
    "id",
    "reference",
    "type",
    "source",
    "destination",
    "source_account_id",
    "destination_account_id",
    "amount",
    "currency",
    "description",
    "payload",
    "fingerprint",
    "status",
    "reason",
    "errors",
    "created_at",
)

# Every refusal is a check_violation (23514): never transient (processor/db/transient.py), so a worker holds the
# payment instead of retrying it, and the constraint name says which rule it broke.
REFUSE = "ERRCODE = 'check_violation', CONSTRAINT = '{rule}', TABLE = TG_TABLE_NAME"

# A violation that is already in the ledger when this revision runs would make every later payment of its account
# fail; refuse the upgrade instead, and let `processor verify` say where.
PRECONDITION = """
DO $$
DECLARE
    broken text;
BEGIN
    SELECT string_agg(rule, ', ') INTO broken FROM (
        SELECT 'balance_equals_entries' AS rule WHERE EXISTS (
            SELECT 1 FROM accounts a
            WHERE a.balance <> COALESCE((SELECT sum(e.amount) FROM ledger_entries e WHERE e.account_id = a.id), 0))
        UNION ALL
        SELECT 'balance_after_is_running_total' WHERE EXISTS (
            SELECT 1 FROM (SELECT balance_after,
                                  sum(amount) OVER (PARTITION BY account_id ORDER BY id) AS running
                           FROM ledger_entries) r
            WHERE r.balance_after <> r.running)
        UNION ALL
        SELECT 'transaction_entries_sum_to_zero' WHERE EXISTS (
            SELECT 1 FROM ledger_entries GROUP BY transaction_id HAVING sum(amount) <> 0)
        UNION ALL
        SELECT 'entries_in_transaction_currency' WHERE EXISTS (
            SELECT 1 FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id
            JOIN accounts a ON a.id = e.account_id WHERE a.currency IS DISTINCT FROM t.currency)
        UNION ALL
        SELECT 'applied_has_entries' WHERE EXISTS (
            SELECT 1 FROM transactions t WHERE t.status = 'applied'
            AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id))
        UNION ALL
        SELECT 'rejected_has_no_entries' WHERE EXISTS (
            SELECT 1 FROM transactions t WHERE t.status = 'rejected'
            AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id))
    ) found;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'the ledger already breaks invariants the database is to enforce: %', broken
            USING ERRCODE = 'check_violation', HINT = 'processor verify lists the rows; repair them, then upgrade';
    END IF;
END
$$"""

# After each INSERT of entries, once for all its rows (the repositories write a batch's entries in one statement).
ENTRIES_INSERTED = f"""
CREATE FUNCTION ledger_entries_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- The accounts, in id order as payments lock them (a payment holds them already): two writers cannot both
    -- extend an account's running balance from the same entry.
    PERFORM 1 FROM accounts WHERE id IN (SELECT account_id FROM added) ORDER BY id FOR NO KEY UPDATE;

    SELECT t.reference, t.status, t.currency AS transaction_currency, a.number, a.currency AS account_currency,
           t.xmin = pg_current_xact_id()::xid AS recorded_now
      INTO bad
      FROM added n JOIN transactions t ON t.id = n.transaction_id JOIN accounts a ON a.id = n.account_id
     WHERE t.xmin <> pg_current_xact_id()::xid OR t.status <> 'applied' OR a.currency <> t.currency
     LIMIT 1;
    IF FOUND AND NOT bad.recorded_now THEN
        RAISE EXCEPTION 'transaction %: ledger entries are written in the database transaction that records it',
            bad.reference USING {REFUSE.format(rule="ledger_entries_with_their_transaction")};
    ELSIF FOUND AND bad.status <> 'applied' THEN
        RAISE EXCEPTION 'transaction % is %: only an applied transaction has ledger entries', bad.reference,
            bad.status USING {REFUSE.format(rule="rejected_has_no_entries")};
    ELSIF FOUND THEN
        RAISE EXCEPTION 'transaction % is in %: its entry on account % (in %) is not',
            bad.reference, bad.transaction_currency, bad.number, bad.account_currency
            USING {REFUSE.format(rule="entries_in_transaction_currency")};
    END IF;

    -- All of a transaction's entries come in one statement, so they are all here, and must sum to zero.
    SELECT t.reference, s.total, s.entries, h.here
      INTO bad
      FROM (SELECT transaction_id, count(*) AS here FROM added GROUP BY transaction_id) h
     CROSS JOIN LATERAL (SELECT sum(e.amount) AS total, count(*) AS entries
                           FROM ledger_entries e WHERE e.transaction_id = h.transaction_id) s
      JOIN transactions t ON t.id = h.transaction_id
     WHERE s.total <> 0 OR s.entries <> h.here
     LIMIT 1;
    IF FOUND AND bad.entries <> bad.here THEN
        RAISE EXCEPTION 'transaction % already has ledger entries: all of its entries are written in one statement',
            bad.reference USING {REFUSE.format(rule="entries_written_together")};
    ELSIF FOUND THEN
        RAISE EXCEPTION 'the ledger entries of transaction % sum to %, not zero', bad.reference, bad.total
            USING {REFUSE.format(rule="transaction_entries_sum_to_zero")};
    END IF;

    -- Each entry's balance_after continues its account's running total, from the newest entry before this
    -- statement's first one. Every visible entry from there on is recomputed, so an entry another writer slipped
    -- in between shows up too.
    SELECT a.number, r.id, r.balance_after, r.running
      INTO bad
      FROM (SELECT e.account_id, e.id, e.balance_after,
                   s.opening + sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
              FROM (SELECT f.account_id, f.first_id,
                           COALESCE((SELECT p.balance_after FROM ledger_entries p
                                      WHERE p.account_id = f.account_id AND p.id < f.first_id
                                      ORDER BY p.id DESC LIMIT 1), 0) AS opening
                      FROM (SELECT account_id, min(id) AS first_id FROM added GROUP BY account_id) f) s
              JOIN ledger_entries e ON e.account_id = s.account_id AND e.id >= s.first_id) r
      JOIN accounts a ON a.id = r.account_id
     WHERE r.balance_after <> r.running
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account %: ledger entry % has balance_after %, but the running total of its entries is %',
            bad.number, bad.id, bad.balance_after, bad.running
            USING {REFUSE.format(rule="balance_after_is_running_total")};
    END IF;
    RETURN NULL;
END
$$"""

# Before a balance changes: the row is locked by the UPDATE itself, and the new balance must be where the
# account's entries end, so it moves only by the entries written since it last did.
BALANCE_CHANGED = f"""
CREATE FUNCTION ledger_balance_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest numeric;
BEGIN
    SELECT balance_after INTO newest FROM ledger_entries WHERE account_id = NEW.id ORDER BY id DESC LIMIT 1;
    IF NEW.balance <> COALESCE(newest, 0) THEN
        RAISE EXCEPTION 'account %: balance % to % does not follow its ledger entries, which end at %',
            NEW.number, OLD.balance, NEW.balance, COALESCE(newest, 0)
            USING {REFUSE.format(rule="balance_equals_entries")};
    END IF;
    RETURN NEW;
END
$$"""

ACCOUNT_OPENED = f"""
CREATE FUNCTION ledger_account_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account %: an account opens with a zero balance, not %; money comes in by ledger entries',
        NEW.number, NEW.balance USING {REFUSE.format(rule="balance_equals_entries")};
END
$$"""

CURRENCY_CHANGED = f"""
CREATE FUNCTION ledger_currency_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account %: its currency is %, and an account''s currency does not change',
        OLD.number, OLD.currency USING {REFUSE.format(rule="entries_in_transaction_currency")};
END
$$"""

# At commit, once per transaction recorded: everything of the database transaction is written by then.
TRANSACTION_COMMITTED = f"""
CREATE FUNCTION ledger_transaction_committed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    found record;
BEGIN
    SELECT count(*) AS entries, COALESCE(sum(e.amount), 0) AS total,
           min(a.number) FILTER (WHERE e.id = n.id AND a.balance <> n.balance_after) AS stale
      INTO found
      FROM ledger_entries e
      JOIN accounts a ON a.id = e.account_id
     CROSS JOIN LATERAL (SELECT p.id, p.balance_after FROM ledger_entries p
                          WHERE p.account_id = e.account_id ORDER BY p.id DESC LIMIT 1) n
     WHERE e.transaction_id = NEW.id;
    IF NEW.status = 'applied' AND found.entries = 0 THEN
        RAISE EXCEPTION 'transaction % is applied but has no ledger entries', NEW.reference
            USING {REFUSE.format(rule="applied_has_entries")};
    ELSIF NEW.status <> 'applied' AND found.entries > 0 THEN
        RAISE EXCEPTION 'transaction % is %: only an applied transaction has ledger entries', NEW.reference,
            NEW.status USING {REFUSE.format(rule="rejected_has_no_entries")};
    ELSIF found.total <> 0 THEN
        RAISE EXCEPTION 'the ledger entries of transaction % sum to %, not zero', NEW.reference, found.total
            USING {REFUSE.format(rule="transaction_entries_sum_to_zero")};
    ELSIF found.stale IS NOT NULL THEN
        RAISE EXCEPTION 'account %: at commit its balance is not where its ledger entries end (transaction %)',
            found.stale, NEW.reference USING {REFUSE.format(rule="balance_equals_entries")};
    END IF;
    RETURN NULL;
END
$$"""

APPEND_ONLY = f"""
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of %: recorded rows are never changed or removed', TG_OP, TG_TABLE_NAME
        USING {REFUSE.format(rule="append_only")};
END
$$"""

OUTCOME_CHANGED = f"""
CREATE FUNCTION ledger_outcome_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transaction %: a recorded outcome does not change (%)', OLD.reference,
        '{", ".join(OUTCOME_COLUMNS)}' USING {REFUSE.format(rule="append_only")};
END
$$"""

TRIGGERS = (
    ("ledger_entries", "ledger_entries_inserted"),
    ("ledger_entries", "ledger_entries_append_only"),
    ("accounts", "accounts_balance_follows_entries"),
    ("accounts", "accounts_open_at_zero"),
    ("accounts", "accounts_currency_fixed"),
    ("transactions", "transactions_checked_at_commit"),
    ("transactions", "transactions_append_only"),
    ("transactions", "transactions_outcome_fixed"),
    ("transaction_conflicts", "transaction_conflicts_append_only"),
)

FUNCTIONS = (
    "ledger_entries_inserted",
    "ledger_balance_changed",
    "ledger_account_opened",
    "ledger_currency_changed",
    "ledger_transaction_committed",
    "ledger_append_only",
    "ledger_outcome_changed",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.execute(PRECONDITION)
    for function in (
        ENTRIES_INSERTED,
        BALANCE_CHANGED,
        ACCOUNT_OPENED,
        CURRENCY_CHANGED,
        TRANSACTION_COMMITTED,
        APPEND_ONLY,
        OUTCOME_CHANGED,
    ):
        op.execute(function)
    op.execute(
        "CREATE TRIGGER ledger_entries_inserted AFTER INSERT ON ledger_entries"
        " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_inserted()"
    )
    # Statement triggers: they fire even when no row matches, so any UPDATE or DELETE is refused outright.
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
    )
    op.execute(
        "CREATE TRIGGER transaction_conflicts_append_only BEFORE UPDATE OR DELETE ON transaction_conflicts"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
    )
    op.execute(
        "CREATE TRIGGER transactions_append_only BEFORE DELETE ON transactions"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
    )
    # Row triggers with a WHEN: the function runs only for a change that is refused, so updates of other (later)
    # columns, and of account status or reward points, cost nothing.
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in OUTCOME_COLUMNS)
    op.execute(
        "CREATE TRIGGER transactions_outcome_fixed BEFORE UPDATE ON transactions"
        f" FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION ledger_outcome_changed()"
    )
    op.execute(
        "CREATE TRIGGER accounts_balance_follows_entries BEFORE UPDATE OF balance ON accounts"
        " FOR EACH ROW WHEN (OLD.balance IS DISTINCT FROM NEW.balance) EXECUTE FUNCTION ledger_balance_changed()"
    )
    op.execute(
        "CREATE TRIGGER accounts_open_at_zero BEFORE INSERT ON accounts"
        " FOR EACH ROW WHEN (NEW.balance <> 0) EXECUTE FUNCTION ledger_account_opened()"
    )
    op.execute(
        "CREATE TRIGGER accounts_currency_fixed BEFORE UPDATE OF currency ON accounts"
        " FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency) EXECUTE FUNCTION ledger_currency_changed()"
    )
    # Deferred to commit: a transaction is inserted before its entries, and its accounts' balances are saved last.
    op.execute(
        "CREATE CONSTRAINT TRIGGER transactions_checked_at_commit AFTER INSERT ON transactions"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_committed()"
    )


def downgrade() -> None:
    """Downgrade schema."""
    # The triggers go first: 0003's downgrade re-points entries and transactions, which they would refuse.
    for table, trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
