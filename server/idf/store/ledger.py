"""The market's double-entry ledger: integer balances per (account, token), a journal of
transactions whose postings sum to zero per token, and idempotency keys with the first result.

System accounts start with "market/accounts/-" and alone may go negative: `-issuance` is the
other side of every mint and burn, so the supply of a token is minus its issuance balance, and
for every token  sum(balances of all other accounts) == supply  holds after every commit. Pools
are accounts too (their balances are the reserves). Every mutation is one serialised database
transaction (`Database.write`): all of it commits or none of it does.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from idf.store.sql import Database

SYSTEM = "market/accounts/-"
ISSUANCE = SYSTEM + "issuance"
INT64_MAX = 2**63 - 1

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS balances (account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (account, token))",
    "CREATE TABLE IF NOT EXISTS journal (seq BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, request_id TEXT UNIQUE, reference TEXT NOT NULL, create_time TEXT NOT NULL, result TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS postings (seq BIGINT NOT NULL, account TEXT NOT NULL, token TEXT NOT NULL, amount BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS postings_account ON postings (account, seq)",
    "CREATE TABLE IF NOT EXISTS pools (name TEXT PRIMARY KEY, fee_bps INTEGER NOT NULL)",
]
_TABLES = ("balances", "journal", "postings", "pools")


class InsufficientBalance(Exception):
    def __init__(self, account: str, token: str, needed: int, available: int) -> None:
        super().__init__(f"{account} holds {available} {token}, needs {needed}")
        self.account, self.token, self.needed, self.available = account, token, needed, available


class AmountOverflow(Exception):
    pass


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
        row = self.db.one("SELECT amount FROM balances WHERE account = ? AND token = ?", (account, token))
        return int(row[0]) if row else 0

    def prior(self, request_id: str) -> dict | None:
        """The stored result of an earlier transaction with this idempotency key."""
        row = self.db.one("SELECT result FROM journal WHERE request_id = ?", (request_id,))
        return json.loads(row[0]) if row else None

    def post(self, kind: str, postings: Sequence[tuple[str, str, int]], *, request_id: str | None,
             reference: str = "", result: dict | None = None) -> str:
        """Apply balanced postings; raises (and so rolls back) on an unbalanced entry, a
        negative non-system balance, or a balance past int64."""
        totals: dict[str, int] = defaultdict(int)
        for _, token, amount in postings:
            totals[token] += amount
        if any(totals.values()):
            raise ValueError(f"unbalanced journal entry: {dict(totals)}")
        net: dict[tuple[str, str], int] = defaultdict(int)
        for account, token, amount in postings:
            net[(account, token)] += amount
        for (account, token), delta in sorted(net.items()):
            new = self.balance(account, token) + delta
            if new < 0 and not account.startswith(SYSTEM):
                raise InsufficientBalance(account, token, -delta, new - delta)
            if abs(new) > INT64_MAX:
                raise AmountOverflow(f"{account}'s {token} balance would pass 2^63 - 1")
            self.db.run("DELETE FROM balances WHERE account = ? AND token = ?", (account, token))
            self.db.run("INSERT INTO balances (account, token, amount) VALUES (?, ?, ?)", (account, token, new))
        (seq,) = self.db.one("SELECT COALESCE(MAX(seq) + 1, 1) FROM journal")  # type: ignore[misc]
        tx_id = uuid.uuid4().hex
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        result = dict(result or {}, transaction_id=tx_id)
        self.db.run("INSERT INTO journal (seq, id, kind, request_id, reference, create_time, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, tx_id, kind, request_id, reference, now, json.dumps(result, sort_keys=True)))
        for account, token, amount in postings:
            if amount:
                self.db.run("INSERT INTO postings (seq, account, token, amount) VALUES (?, ?, ?, ?)", (seq, account, token, amount))
        return tx_id


class Ledger:
    def __init__(self, url: str) -> None:
        self.db = Database(url, _SCHEMA)

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
            rows = self.db.all("SELECT token, amount FROM balances WHERE account = ? AND amount <> 0 ORDER BY token", (account,))
        return {t: int(a) for t, a in rows}

    def history(self, account: str, *, before: int | None, limit: int) -> list[Entry]:
        with self.db.lock:
            seqs = [r[0] for r in self.db.all(
                "SELECT DISTINCT seq FROM postings WHERE account = ?" + (" AND seq < ?" if before is not None else "")
                + " ORDER BY seq DESC LIMIT ?", (account, before, limit) if before is not None else (account, limit))]
            return [self._entry(seq) for seq in seqs]

    def _entry(self, seq: int) -> Entry:
        row = self.db.one("SELECT seq, id, kind, request_id, reference, create_time FROM journal WHERE seq = ?", (seq,))
        postings = tuple((a, t, int(m)) for a, t, m in self.db.all("SELECT account, token, amount FROM postings WHERE seq = ?", (seq,)))
        return Entry(*row, postings=postings)  # type: ignore[misc]

    def audit(self) -> dict[str, object]:
        """Everything the invariants need: balances, the journal replayed, per-token totals."""
        with self.db.lock:
            balances = {(a, t): int(m) for a, t, m in self.db.all("SELECT account, token, amount FROM balances")}
            replay: dict[tuple[str, str], int] = defaultdict(int)
            per_tx: dict[tuple[int, str], int] = defaultdict(int)
            for seq, a, t, m in self.db.all("SELECT seq, account, token, amount FROM postings"):
                replay[(a, t)] += int(m)
                per_tx[(int(seq), t)] += int(m)
        return {"balances": {k: v for k, v in balances.items() if v}, "replay": {k: v for k, v in replay.items() if v},
                "unbalanced": [k for k, v in per_tx.items() if v]}

    def close(self) -> None:
        self.db.close()
