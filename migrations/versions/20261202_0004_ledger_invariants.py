"""Ledger invariants enforced by the database: raw SQL that would break the ledger is refused, not found later.

What `processor verify` checks after the fact, PostgreSQL now refuses as it happens (SQLSTATE 23514,
check_violation, with the rule's name as the constraint name):

- The entries of a transaction are written in the database transaction that records it, only for an applied
  transaction, in its currency, and they sum to zero: what each INSERT posts to a transaction balances (a statement
  trigger on ledger_entries), so all of them do, since entries never change.
- Each entry's balance_after is its account's running total, and an account's balance always equals the
  balance_after of its newest entry, so it may change only by the entries written for it (the same statement
  trigger, a row trigger before a balance changes, and a deferred constraint trigger per account at commit).
  Accounts open at zero; their currency is fixed.
- An applied transaction has entries at commit (a deferred constraint trigger per applied transaction); a rejected
  one never gets any (the statement trigger).
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

# The row triggers below look up one transaction's or one account's entries by index, many times per batch. A
# session keeps their plans: one that began on a nearly empty ledger would keep a sequential scan, each call reading
# the whole table once it has grown. Index paths are the right ones at any size, so the planner is held to them.
INDEX_ONLY = "SET enable_seqscan = off"

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
# Its queries run by EXECUTE, so each is planned for the tables as they are now: a plan cached by a session that
# started on a nearly empty ledger would scan the whole table on every batch once it has grown.
ENTRIES_INSERTED = f"""
CREATE FUNCTION ledger_entries_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
    broken bigint;
BEGIN
    -- The accounts, in id order as payments lock them (a payment holds them already): two writers cannot both
    -- extend an account's running balance from the same entry.
    EXECUTE $q$SELECT 1 FROM accounts WHERE id IN (SELECT account_id FROM added) ORDER BY id FOR NO KEY UPDATE$q$;
    -- Touching them queues accounts_balance_at_commit once per account, not once per entry: entries whose balance
    -- is not moved to match by commit are refused then.
    EXECUTE $q$UPDATE accounts SET balance = balance WHERE id IN (SELECT account_id FROM added)$q$;

    -- Per transaction: recorded by this database transaction, applied, in its currency, and what this statement
    -- posts to it balances (so no later statement can unbalance it after its commit check, even one made
    -- IMMEDIATE).
    EXECUTE $q$
        SELECT t.reference, t.status, t.currency, h.total, h.lowest, h.highest,
               t.xmin = pg_current_xact_id()::xid AS recorded_now
          FROM (SELECT n.transaction_id, sum(n.amount) AS total,
                       min(a.currency) AS lowest, max(a.currency) AS highest
                  FROM added n JOIN accounts a ON a.id = n.account_id
                 GROUP BY n.transaction_id) h
          JOIN transactions t ON t.id = h.transaction_id
         WHERE t.xmin <> pg_current_xact_id()::xid OR t.status <> 'applied' OR h.total <> 0
            OR h.lowest <> t.currency OR h.highest <> t.currency
         LIMIT 1$q$ INTO bad;
    GET DIAGNOSTICS broken = ROW_COUNT;
    IF broken > 0 AND NOT bad.recorded_now THEN
        RAISE EXCEPTION 'transaction %: ledger entries are written in the database transaction that records it',
            bad.reference USING {REFUSE.format(rule="ledger_entries_with_their_transaction")};
    ELSIF broken > 0 AND bad.status <> 'applied' THEN
        RAISE EXCEPTION 'transaction % is %: only an applied transaction has ledger entries', bad.reference,
            bad.status USING {REFUSE.format(rule="rejected_has_no_entries")};
    ELSIF broken > 0 AND bad.total <> 0 THEN
        RAISE EXCEPTION 'the ledger entries of transaction % sum to %, not zero', bad.reference, bad.total
            USING {REFUSE.format(rule="transaction_entries_sum_to_zero")};
    ELSIF broken > 0 THEN
        RAISE EXCEPTION 'transaction % is in %: an entry on an account in % is not', bad.reference,
            bad.currency, CASE WHEN bad.lowest <> bad.currency THEN bad.lowest ELSE bad.highest END
            USING {REFUSE.format(rule="entries_in_transaction_currency")};
    END IF;

    -- Each entry's balance_after continues its account's running total, from the newest entry before this
    -- statement's first one. Every visible entry from there on is recomputed, so an entry another writer slipped
    -- in between shows up too.
    EXECUTE $q$
        SELECT a.number, r.id, r.balance_after, r.running
          FROM (SELECT account_id, min(id) AS first_id FROM added GROUP BY account_id) f
          JOIN accounts a ON a.id = f.account_id
         CROSS JOIN LATERAL (SELECT COALESCE((SELECT p.balance_after FROM ledger_entries p
                                               WHERE p.account_id = f.account_id AND p.id < f.first_id
                                               ORDER BY p.id DESC LIMIT 1), 0) AS opening) o
         CROSS JOIN LATERAL (SELECT e.id, e.balance_after,
                                    o.opening + sum(e.amount) OVER (ORDER BY e.id) AS running
                               FROM ledger_entries e
                              WHERE e.account_id = f.account_id AND e.id >= f.first_id) r
         WHERE r.balance_after <> r.running
         LIMIT 1$q$ INTO bad;
    GET DIAGNOSTICS broken = ROW_COUNT;
    IF broken > 0 THEN
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
CREATE FUNCTION ledger_balance_changed() RETURNS trigger LANGUAGE plpgsql {INDEX_ONLY} AS $$
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

# At commit, once per account whose balance was set or whose entries were written: by then everything is written.
BALANCE_AT_COMMIT = f"""
CREATE FUNCTION ledger_balance_at_commit() RETURNS trigger LANGUAGE plpgsql {INDEX_ONLY} AS $$
DECLARE
    found record;
BEGIN
    SELECT a.number, a.balance,
           COALESCE((SELECT p.balance_after FROM ledger_entries p WHERE p.account_id = a.id
                      ORDER BY p.id DESC LIMIT 1), 0) AS newest
      INTO found
      FROM accounts a WHERE a.id = NEW.id;
    IF found.balance <> found.newest THEN
        RAISE EXCEPTION 'account %: at commit its balance is %, but its ledger entries end at %', found.number,
            found.balance, found.newest USING {REFUSE.format(rule="balance_equals_entries")};
    END IF;
    RETURN NULL;
END
$$"""

# At commit, once per applied transaction: it is inserted before its entries. (That they balance needs no check
# here: every INSERT balances what it posts to each transaction, and entries never change.)
TRANSACTION_COMMITTED = f"""
CREATE FUNCTION ledger_transaction_committed() RETURNS trigger LANGUAGE plpgsql {INDEX_ONLY} AS $$
BEGIN
    PERFORM 1 FROM ledger_entries WHERE transaction_id = NEW.id LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction % is applied but has no ledger entries', NEW.reference
            USING {REFUSE.format(rule="applied_has_entries")};
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
    ("accounts", "accounts_balance_at_commit"),
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
    "ledger_balance_at_commit",
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
        BALANCE_AT_COMMIT,
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
    # Deferred to commit: apply_payments inserts transactions, then their entries, then saves the balances.
    op.execute(
        "CREATE CONSTRAINT TRIGGER transactions_checked_at_commit AFTER INSERT ON transactions"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'applied')"
        " EXECUTE FUNCTION ledger_transaction_committed()"
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER accounts_balance_at_commit AFTER UPDATE OF balance ON accounts"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_balance_at_commit()"
    )


def downgrade() -> None:
    """Downgrade schema."""
    # The triggers go first: 0003's downgrade re-points entries and transactions, which they would refuse. IF EXISTS:
    # a database migrated by this revision's first version has no accounts_balance_at_commit.
    for table, trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
