"""The ledger audit catches a tampered database: each invariant fails, names what is wrong, and
the others still pass. The tampering is done with plain SQL on a real SQLite file, as an operator
or an attacker with database access would; the figures in each detail are computed by hand from
the postings below."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from idf.store.ledger import ESCROW, ISSUANCE, Ledger, invariants

ALICE, BOB = "market/accounts/alice", "market/accounts/bob"


@pytest.fixture()
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "idf.sqlite3"
    ledger = Ledger(str(path))
    with ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "CEU", -1000), (ALICE, "CEU", 1000)], request_id="m1")
    with ledger.transaction() as tx:
        tx.post("transfer", [(ALICE, "CEU", -300), (BOB, "CEU", 300)], request_id="t1")
    with ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "PFT", -50), (BOB, "PFT", 50)], request_id="m2")
    ledger.close()
    return path


def _audit(path: Path) -> dict[str, object]:
    ledger = Ledger(str(path))
    try:
        return {i.name: i for i in invariants(ledger.audit())}
    finally:
        ledger.close()


def _sql(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)


ALL = [
    "entries_balance",
    "balances_equal_replay",
    "holdings_equal_supply",
    "escrow_equals_open_reservations",
    "no_negative_user_balance",
]


def _only_failing(found: dict, *names: str) -> None:
    assert list(found) == ALL
    assert sorted(n for n, i in found.items() if not i.passed) == sorted(names)
    for i in found.values():
        assert i.description and i.description[0].islower()
        assert (i.detail == "") == i.passed


def test_an_honest_ledger_passes_every_invariant(ledger_file):
    found = _audit(ledger_file)
    _only_failing(found)
    # what `idf market audit` and GetLedgerAudit show an operator (docs/market.md)
    assert {n: i.description for n, i in found.items()} == {
        "entries_balance": "every journal entry's postings sum to zero per token",
        "balances_equal_replay": "every balance equals the sum of its postings in the journal",
        "holdings_equal_supply": "per token, the balances of all non-issuance accounts sum to the supply (minus issuance)",
        "escrow_equals_open_reservations": "escrow's CEU equals the sum of the open reservations",
        "no_negative_user_balance": "no account but the system ones holds a negative balance",
    }


def test_a_balance_edited_in_place(ledger_file):
    _sql(
        ledger_file,
        f"UPDATE balances SET amount = amount + 7 WHERE account = '{BOB}' AND token = 'CEU'",
    )
    found = _audit(ledger_file)
    _only_failing(found, "balances_equal_replay", "holdings_equal_supply")
    assert found["balances_equal_replay"].detail == f"{BOB} CEU: stored 307, replayed 300"
    assert found["holdings_equal_supply"].detail == "CEU: held 1007, supply 1000"


def test_a_balance_row_deleted_and_one_invented(ledger_file):
    # Bob's PFT row vanishes (stored 0, replayed 50); a CEU row appears with no postings behind it
    _sql(
        ledger_file,
        f"DELETE FROM balances WHERE account = '{BOB}' AND token = 'PFT'",
        f"INSERT INTO balances (account, token, amount) VALUES ('{ALICE}', 'XYZ', 5)",
    )
    found = _audit(ledger_file)
    _only_failing(found, "balances_equal_replay", "holdings_equal_supply")
    assert found["balances_equal_replay"].detail == (
        f"{ALICE} XYZ: stored 5, replayed 0; {BOB} PFT: stored 0, replayed 50"
    )
    assert found["holdings_equal_supply"].detail == "PFT: held 0, supply 50; XYZ: held 5, supply 0"


def test_a_one_unit_balance_deleted(tmp_path):
    """A row worth exactly one base unit vanishes: the smallest theft is still seen (stored 0)."""
    path = tmp_path / "idf.sqlite3"
    ledger = Ledger(str(path))
    with ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "PFT", -1), (BOB, "PFT", 1)], request_id="m")
    ledger.close()
    _sql(path, f"DELETE FROM balances WHERE account = '{BOB}'")
    found = _audit(path)
    _only_failing(found, "balances_equal_replay", "holdings_equal_supply")
    assert found["balances_equal_replay"].detail == f"{BOB} PFT: stored 0, replayed 1"
    assert found["holdings_equal_supply"].detail == "PFT: held 0, supply 1"


def test_a_one_unit_balance_invented_in_a_token_never_issued(ledger_file):
    """The smallest forgery of a token with no supply at all: one base unit held, none issued."""
    _sql(ledger_file, f"INSERT INTO balances (account, token, amount) VALUES ('{ALICE}', 'XYZ', 1)")
    found = _audit(ledger_file)
    _only_failing(found, "balances_equal_replay", "holdings_equal_supply")
    assert found["holdings_equal_supply"].detail == "XYZ: held 1, supply 0"


def test_an_unbalanced_posting_smuggled_into_the_journal(ledger_file):
    _sql(
        ledger_file,
        f"INSERT INTO postings (seq, account, token, amount) VALUES (2, '{BOB}', 'CEU', 1)",
        f"UPDATE balances SET amount = 301 WHERE account = '{BOB}' AND token = 'CEU'",
    )
    found = _audit(ledger_file)
    _only_failing(found, "entries_balance", "holdings_equal_supply")
    assert found["entries_balance"].detail == "entry 2 CEU"


def test_a_negative_user_balance(ledger_file):
    # balanced, replay-consistent and supply-consistent, yet Alice is overdrawn: only that fails
    _sql(
        ledger_file,
        f"INSERT INTO postings (seq, account, token, amount) VALUES (2, '{ALICE}', 'CEU', -800)",
        f"INSERT INTO postings (seq, account, token, amount) VALUES (2, '{BOB}', 'CEU', 800)",
        f"UPDATE balances SET amount = -100 WHERE account = '{ALICE}' AND token = 'CEU'",
        f"UPDATE balances SET amount = 1100 WHERE account = '{BOB}' AND token = 'CEU'",
    )
    found = _audit(ledger_file)
    _only_failing(found, "no_negative_user_balance")
    assert found["no_negative_user_balance"].detail == f"{ALICE} CEU: -100"


def test_escrow_without_a_reservation(ledger_file):
    _sql(
        ledger_file,
        f"INSERT INTO postings (seq, account, token, amount) VALUES (2, '{ALICE}', 'CEU', -40)",
        f"INSERT INTO postings (seq, account, token, amount) VALUES (2, '{ESCROW}', 'CEU', 40)",
        f"UPDATE balances SET amount = 660 WHERE account = '{ALICE}' AND token = 'CEU'",
        f"INSERT INTO balances (account, token, amount) VALUES ('{ESCROW}', 'CEU', 40)",
    )
    found = _audit(ledger_file)
    _only_failing(found, "escrow_equals_open_reservations")
    assert (
        found["escrow_equals_open_reservations"].detail
        == "escrow holds 40 CEU, open reservations total 0"
    )


def test_details_show_five_failures_and_count_the_rest(ledger_file):
    _sql(
        ledger_file,
        *[
            f"INSERT INTO balances (account, token, amount) VALUES ('market/accounts/u{i}', 'CEU', 1)"
            for i in range(8)
        ],
    )
    detail = _audit(ledger_file)["balances_equal_replay"].detail
    shown = [f"market/accounts/u{i} CEU: stored 1, replayed 0" for i in range(5)]
    assert detail == "; ".join(shown) + " (and 3 more)"
    # six: one more
    _sql(
        ledger_file,
        "DELETE FROM balances WHERE account IN ('market/accounts/u6', 'market/accounts/u7')",
    )
    assert _audit(ledger_file)["balances_equal_replay"].detail == "; ".join(shown) + " (and 1 more)"
    # exactly five: no count
    _sql(ledger_file, "DELETE FROM balances WHERE account = 'market/accounts/u5'")
    assert _audit(ledger_file)["balances_equal_replay"].detail == "; ".join(shown)


def test_a_reused_idempotency_key_is_refused_quoting_a_bounded_prefix(tmp_path):
    from idf.store.ledger import IdempotencyKeyReused

    ledger = Ledger(str(tmp_path / "idf.sqlite3"))
    key = "k" * 64 + "TAIL"  # the message quotes at most 64 characters of a caller's key
    with ledger.transaction() as tx:
        tx.post(
            "mint",
            [(ISSUANCE, "CEU", -10), (ALICE, "CEU", 10)],
            request_id=key,
            account=ALICE,
            operation="Mint",
            fingerprint="a",
        )
    with ledger.transaction() as tx:
        assert tx.prior(ALICE, "Mint", key, "a")["transaction_id"]
        with pytest.raises(IdempotencyKeyReused) as info:
            tx.prior(ALICE, "Mint", key, "b")
    assert str(info.value) == (
        f"request_id {'k' * 64!r} was used for another Mint request with different parameters;"
        " use a new request_id for a new request"
    )
    assert (info.value.operation, info.value.request_id) == ("Mint", key)
    ledger.close()


def test_an_overdraft_is_refused_naming_the_account_and_amounts(tmp_path):
    from idf.store.ledger import InsufficientBalance

    ledger = Ledger(str(tmp_path / "idf.sqlite3"))
    with ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "CEU", -10), (ALICE, "CEU", 10)], request_id="m")
    with pytest.raises(InsufficientBalance) as info, ledger.transaction() as tx:
        tx.post("transfer", [(ALICE, "CEU", -11), (BOB, "CEU", 11)], request_id="t")
    assert str(info.value) == f"{ALICE} holds 10 CEU, needs 11"
    assert ledger.balances(ALICE) == {"CEU": 10} and ledger.balances(BOB) == {}
    ledger.close()


def test_fingerprints_are_sha256_of_canonical_json():
    """The idempotency fingerprint is SHA-256 of the parameters as JSON with sorted keys and no
    spaces (values JSON cannot hold as their str): computed here with hashlib on the literal text."""
    import datetime
    import hashlib

    from idf.store.ledger import fingerprint

    assert (
        fingerprint({"b": 2, "a": [1, "x"]}) == hashlib.sha256(b'{"a":[1,"x"],"b":2}').hexdigest()
    )
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    when = datetime.date(2026, 11, 30)
    assert fingerprint({"at": when}) == hashlib.sha256(b'{"at":"2026-11-30"}').hexdigest()


def test_journal_entries_record_defaults_and_utc_times(tmp_path):
    import re

    ledger = Ledger(str(tmp_path / "idf.sqlite3"))
    with ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "CEU", -5), (ALICE, "CEU", 5)], request_id="r1")
    with ledger.transaction() as tx:
        # no account, no operation: the key is ("", kind, request_id)
        assert tx.prior("", "mint", "r1")["transaction_id"]
        assert tx.prior(ALICE, "mint", "r1") is None
    (entry,) = ledger.history(ALICE, before=None, limit=10)
    assert entry.reference == "" and entry.kind == "mint" and entry.request_id == "r1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry.create_time), (
        entry.create_time
    )
    ledger.close()


def test_unbalanced_entries_and_int64_overflow_are_refused_by_message(tmp_path):
    from idf.store.ledger import INT64_MAX, AmountOverflow

    ledger = Ledger(str(tmp_path / "idf.sqlite3"))
    with pytest.raises(ValueError) as info, ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "CEU", -5), (ALICE, "CEU", 7)], request_id="u")
    assert str(info.value) == "unbalanced journal entry: {'CEU': 2}"
    with ledger.transaction() as tx:  # a balance of exactly 2^63 - 1 is allowed
        tx.post(
            "mint", [(ISSUANCE, "PFT", -INT64_MAX), (ALICE, "PFT", INT64_MAX)], request_id="max"
        )
    assert ledger.balances(ALICE) == {"PFT": INT64_MAX}
    with pytest.raises(AmountOverflow) as info, ledger.transaction() as tx:
        tx.post("mint", [(ISSUANCE, "PFT", -1), (ALICE, "PFT", 1)], request_id="over")
    # issuance (sorted first) would reach -(2^63): it is named before Alice's 2^63
    assert str(info.value) == f"{ISSUANCE}'s PFT balance would pass 2^63 - 1"
    assert ledger.balances(ALICE) == {"PFT": INT64_MAX}
    ledger.close()
