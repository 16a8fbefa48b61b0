"""The market's double-entry ledger: integer balances per (account, token), a journal of
transactions whose postings sum to zero per token, and idempotency keys with the first result.

Idempotency keys are scoped: a key is (account, operation, request_id), and the journal keeps a
fingerprint of the request's parameters (`fingerprint`). The same key with the same fingerprint
returns the first result; with another fingerprint it is refused (`IdempotencyKeyReused`); another
account or operation is another key. Databases written before scoping are migrated in place
(`_migrate`): their entries keep their results and are scoped by the user account they touch.

System accounts start with "market/accounts/-" and alone may go negative: `-issuance` is the
other side of every mint and burn, so the supply of a token is minus its issuance balance, and
for every token  sum(balances of all other accounts) == supply  holds after every commit. Pools
are accounts too (their balances are the reserves). Every mutation is one serialised database
transaction (`Database.write`): all of it commits or none of it does.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from idf.store.sql import Database

SYSTEM = "market/accounts/-"
ISSUANCE = SYSTEM + "issuance"
ESCROW = SYSTEM + "escrow"
TREASURY = SYSTEM + "treasury"
INT64_MAX = 2**63 - 1

_JOURNAL = (
    "CREATE TABLE IF NOT EXISTS {name} (seq BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, request_id TEXT,"
    " account TEXT NOT NULL DEFAULT '', operation TEXT NOT NULL DEFAULT '', fingerprint TEXT,"
    " reference TEXT NOT NULL, create_time TEXT NOT NULL, result TEXT NOT NULL)"
)
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS balances (account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (account, token))",
    _JOURNAL.replace("{name}", "journal"),
    "CREATE TABLE IF NOT EXISTS postings (seq BIGINT NOT NULL, account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS postings_account ON postings (account, seq)",
    "CREATE TABLE IF NOT EXISTS pools (name TEXT PRIMARY KEY, fee_bps INTEGER NOT NULL)",
    # Escrow: one row per CEU reservation; escrow's balance == the sum of the open ones.
    "CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT NOT NULL, rpc TEXT NOT NULL,"
    " node TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,"
    " charged BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS reservations_open ON reservations (state, expires)",
    # Billed outputs: the digest of every array a metered call returned, with who paid and how much.
    "CREATE TABLE IF NOT EXISTS outputs (id TEXT PRIMARY KEY, digest TEXT NOT NULL, account TEXT NOT NULL, rpc TEXT NOT NULL,"
    " reservation TEXT NOT NULL, charged BIGINT NOT NULL, create_time TEXT NOT NULL, reward_proof TEXT, reward BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS outputs_digest ON outputs (digest, account)",
    "CREATE INDEX IF NOT EXISTS outputs_reservation ON outputs (reservation)",
]
_TABLES = ("balances", "journal", "postings", "pools", "reservations", "outputs")
_KEY_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS journal_key ON journal (account, operation, request_id)"
)


class InsufficientBalance(Exception):
    def __init__(self, account: str, token: str, needed: int, available: int) -> None:
        super().__init__(f"{account} holds {available} {token}, needs {needed}")
        self.account, self.token, self.needed, self.available = account, token, needed, available


class AmountOverflow(Exception):
    pass


class IdempotencyKeyReused(Exception):
    """The key (account, operation, request_id) was used before with other parameters."""

    def __init__(self, operation: str, request_id: str) -> None:
        super().__init__(
            f"request_id {request_id[:64]!r} was used for another {operation} request with different parameters;"
            " use a new request_id for a new request"
        )
        self.operation, self.request_id = operation, request_id


def fingerprint(parameters: dict) -> str:
    """sha256 of a request's canonical parameters (the idempotency key itself excluded)."""
    return hashlib.sha256(
        json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def now_text() -> str:
    return (
        datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class Entry:
    seq: int
    id: str
    kind: str
    request_id: str | None
    reference: str
    create_time: str
    postings: tuple[tuple[str, str, int], ...]


class Tx:
    """Reads and postings inside one write transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def balance(self, account: str, token: str) -> int:
        row = self.db.one(
            "SELECT amount FROM balances WHERE account = ? AND token = ?", (account, token)
        )
        return int(row[0]) if row else 0

    def prior(
        self, account: str, operation: str, request_id: str, fingerprint: str | None = None
    ) -> dict | None:
        """The stored result of an earlier transaction under the key (account, operation,
        request_id); raises IdempotencyKeyReused when it was made with another fingerprint
        (entries from before fingerprints, NULL, match any)."""
        row = self.db.one(
            "SELECT result, fingerprint FROM journal WHERE account = ? AND operation = ? AND request_id = ?",
            (account, operation, request_id),
        )
        if row is None:
            return None
        if fingerprint is not None and row[1] is not None and row[1] != fingerprint:
            raise IdempotencyKeyReused(operation, request_id)
        return json.loads(row[0])

    def post(
        self,
        kind: str,
        postings: Sequence[tuple[str, str, int]],
        *,
        request_id: str | None,
        reference: str = "",
        result: dict | None = None,
        account: str = "",
        operation: str = "",
        fingerprint: str | None = None,
    ) -> str:
        """Apply balanced postings; raises (and so rolls back) on an unbalanced entry, a
        negative non-system balance, or a balance past int64. The entry's idempotency key is
        (account, operation or kind, request_id)."""
        totals: dict[str, int] = defaultdict(int)
        for _, token, amount in postings:
            totals[token] += amount
        if any(totals.values()):
            raise ValueError(f"unbalanced journal entry: {dict(totals)}")
        net: dict[tuple[str, str], int] = defaultdict(int)
        for holder, token, amount in postings:
            net[(holder, token)] += amount
        for (holder, token), delta in sorted(net.items()):
            new = self.balance(holder, token) + delta
            if new < 0 and not holder.startswith(SYSTEM):
                raise InsufficientBalance(holder, token, -delta, new - delta)
            if abs(new) > INT64_MAX:
                raise AmountOverflow(f"{holder}'s {token} balance would pass 2^63 - 1")
            self.db.run("DELETE FROM balances WHERE account = ? AND token = ?", (holder, token))
            self.db.run(
                "INSERT INTO balances (account, token, amount) VALUES (?, ?, ?)",
                (holder, token, new),
            )
        (seq,) = self.db.one("SELECT COALESCE(MAX(seq) + 1, 1) FROM journal")  # type: ignore[misc]
        tx_id = uuid.uuid4().hex
        result = dict(result or {}, transaction_id=tx_id)
        self.db.run(
            "INSERT INTO journal (seq, id, kind, request_id, account, operation, fingerprint, reference, create_time, result)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                tx_id,
                kind,
                request_id,
                account,
                operation or kind,
                fingerprint,
                reference,
                now_text(),
                json.dumps(result, sort_keys=True),
            ),
        )
        for holder, token, amount in postings:
            if amount:
                self.db.run(
                    "INSERT INTO postings (seq, account, token, amount) VALUES (?, ?, ?, ?)",
                    (seq, holder, token, amount),
                )
        return tx_id


class Ledger:
    def __init__(self, url: str) -> None:
        self.db = Database(url, _SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Scope the idempotency keys of a journal written before scoping: add account, operation
        and fingerprint, drop the global UNIQUE on request_id (SQLite: rebuild the table), and
        scope old entries by the user account they touch and their kind."""
        db = self.db
        if "fingerprint" not in db.columns("journal"):
            with db.write(*_TABLES):
                if "fingerprint" not in db.columns("journal"):  # another process may have done it
                    if db.postgres:
                        db.drop_unique("journal", "request_id")
                        for column in (
                            "account TEXT NOT NULL DEFAULT ''",
                            "operation TEXT NOT NULL DEFAULT ''",
                            "fingerprint TEXT",
                        ):
                            db.run(f"ALTER TABLE journal ADD COLUMN {column}")
                    else:
                        db.run(_JOURNAL.replace("{name}", "journal_scoped"))
                        db.run(
                            "INSERT INTO journal_scoped (seq, id, kind, request_id, reference, create_time, result)"
                            " SELECT seq, id, kind, request_id, reference, create_time, result FROM journal"
                        )
                        db.run("DROP TABLE journal")
                        db.run("ALTER TABLE journal_scoped RENAME TO journal")
                    db.run(
                        "UPDATE journal SET operation = kind, account = COALESCE((SELECT MIN(p.account) FROM postings p"
                        " WHERE p.seq = journal.seq AND p.account LIKE ? AND p.account NOT LIKE ?), '')",
                        ("market/accounts/%", SYSTEM + "%"),
                    )
        with db.lock:
            db.run(_KEY_INDEX)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.db.write(*_TABLES):
            yield Tx(self.db)

    def ensure_pool(self, name: str, fee_bps: int) -> None:
        with self.db.write(*_TABLES):
            if not self.db.one("SELECT 1 FROM pools WHERE name = ?", (name,)):
                self.db.run("INSERT INTO pools (name, fee_bps) VALUES (?, ?)", (name, fee_bps))

    def pool_fee(self, name: str) -> int | None:
        with self.db.lock:
            row = self.db.one("SELECT fee_bps FROM pools WHERE name = ?", (name,))
        return int(row[0]) if row else None

    def balances(self, account: str) -> dict[str, int]:
        with self.db.lock:
            rows = self.db.all(
                "SELECT token, amount FROM balances WHERE account = ? AND amount <> 0 ORDER BY token",
                (account,),
            )
        return {t: int(a) for t, a in rows}

    def history(self, account: str, *, before: int | None, limit: int) -> list[Entry]:
        with self.db.lock:
            seqs = [
                r[0]
                for r in self.db.all(
                    "SELECT DISTINCT seq FROM postings WHERE account = ?"
                    + (" AND seq < ?" if before is not None else "")
                    + " ORDER BY seq DESC LIMIT ?",
                    (account, before, limit) if before is not None else (account, limit),
                )
            ]
            return [self._entry(seq) for seq in seqs]

    def _entry(self, seq: int) -> Entry:
        row = self.db.one(
            "SELECT seq, id, kind, request_id, reference, create_time FROM journal WHERE seq = ?",
            (seq,),
        )
        postings = tuple(
            (a, t, int(m))
            for a, t, m in self.db.all(
                "SELECT account, token, amount FROM postings WHERE seq = ?", (seq,)
            )
        )
        return Entry(*row, postings=postings)  # type: ignore[misc]

    def audit(self) -> dict[str, object]:
        """Everything the invariants need: balances, the journal replayed, per-token totals, and
        the open escrow reservations (count, total CEU). One consistent snapshot (a read inside a
        write transaction)."""
        with self.db.write(*_TABLES):
            balances = {
                (a, t): int(m)
                for a, t, m in self.db.all("SELECT account, token, amount FROM balances")
            }
            replay: dict[tuple[str, str], int] = defaultdict(int)
            per_tx: dict[tuple[int, str], int] = defaultdict(int)
            for seq, a, t, m in self.db.all("SELECT seq, account, token, amount FROM postings"):
                replay[(a, t)] += int(m)
                per_tx[(int(seq), t)] += int(m)
            count, total = self.db.one(
                "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM reservations WHERE state = 'open'"
            )  # type: ignore[misc]
            (entries,) = self.db.one("SELECT COUNT(*) FROM journal")  # type: ignore[misc]
        return {
            "balances": {k: v for k, v in balances.items() if v},
            "replay": {k: v for k, v in replay.items() if v},
            "unbalanced": sorted(k for k, v in per_tx.items() if v),
            "open_reservations": {"count": int(count), "total": int(total)},
            "entries": int(entries),
        }

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class Invariant:
    name: str
    description: str
    passed: bool
    detail: str


def invariants(audit: dict) -> list[Invariant]:
    """The ledger's invariants, checked on an `audit()` snapshot."""
    balances, replay = audit["balances"], audit["replay"]
    out = []

    def check(name: str, description: str, failures: list) -> None:
        detail = "; ".join(str(f) for f in failures[:5]) + (
            f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        )
        out.append(Invariant(name, description, not failures, detail))

    check(
        "entries_balance",
        "every journal entry's postings sum to zero per token",
        [f"entry {seq} {token}" for seq, token in audit["unbalanced"]],
    )
    differ = sorted(
        k for k in set(balances) | set(replay) if balances.get(k, 0) != replay.get(k, 0)
    )
    check(
        "balances_equal_replay",
        "every balance equals the sum of its postings in the journal",
        [
            f"{a} {t}: stored {balances.get((a, t), 0)}, replayed {replay.get((a, t), 0)}"
            for a, t in differ
        ],
    )
    supply: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for (account, token), amount in balances.items():
        if account.startswith(ISSUANCE):
            supply[token] -= amount
        else:
            held[token] += amount
    check(
        "holdings_equal_supply",
        "per token, the balances of all non-issuance accounts sum to the supply (minus issuance)",
        [
            f"{t}: held {held.get(t, 0)}, supply {supply.get(t, 0)}"
            for t in sorted(set(supply) | set(held))
            if held.get(t, 0) != supply.get(t, 0)
        ],
    )
    escrow, open_total = balances.get((ESCROW, "CEU"), 0), audit["open_reservations"]["total"]
    check(
        "escrow_equals_open_reservations",
        "escrow's CEU equals the sum of the open reservations",
        []
        if escrow == open_total
        else [f"escrow holds {escrow} CEU, open reservations total {open_total}"],
    )
    check(
        "no_negative_user_balance",
        "no account but the system ones holds a negative balance",
        [
            f"{a} {t}: {m}"
            for (a, t), m in sorted(balances.items())
            if m < 0 and not a.startswith(SYSTEM)
        ],
    )
    return out
