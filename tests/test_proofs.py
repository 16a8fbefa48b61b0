"""Proofs end to end on a real server: signed records in an RFC 6962 log, offline verification,
tampering, bad input, idempotency, concurrency, PostgreSQL, and a SIGKILL in the middle."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import ServerProcess, ServerThread, run_in_threads, wait_until
from typer.testing import CliRunner

from idf.cli.main import app
from idf.client import Client, InvalidArgumentError, NotFoundError
from idf.client.merkle import leaf_hash, verify_inclusion
from idf.client.proofs import (
    array_digest,
    load_public_key,
    proof_from_json,
    proof_to_json,
    verify_proof,
)
from idf.v1 import proof_pb2

RNG = np.random.default_rng(0)
REF = RNG.random((32, 32)) + 1


@pytest.fixture()
def log_server(tmp_path):
    s = ServerThread(data_dir=tmp_path)
    yield s
    s.stop()


def _key(c: Client):
    return load_public_key(c.public_key().hex())


def test_create_verify_and_fetch(log_server):
    with Client(log_server.target, max_attempts=1) as c:
        proof = c.create_proof(prediction=REF * 1.001, reference=REF, producer=("nvp", "1.2"))
        assert proof.verdict == "PASS" and proof.policy == "forecast-default"
        v = verify_proof(
            proof_from_json(proof_to_json(proof)),
            _key(c),
            arrays={"prediction": REF * 1.001, "reference": REF},
        )
        assert v.ok, v.failures
        # the decoded proof says what its signed record says
        record = json.loads(proof.record)
        assert proof.metrics == record["metrics"] and proof.producer == ("nvp", "1.2")
        assert proof.input_digests == {
            "prediction": array_digest(REF * 1.001),
            "reference": array_digest(REF),
        }
        assert [(k.metric, k.verdict) for k in proof.checks] == [
            (k["metric"], k["verdict"]) for k in record["checks"]
        ]
        assert (
            proof.create_time is not None
            and proof.create_time.isoformat(timespec="microseconds").replace("+00:00", "Z")
            == record["create_time"]
        )
        assert proof.leaf_index == proof.raw.inclusion_proof.leaf_index == 0
        policies = {p.name: p for p in c.list_policies()}
        assert [k.metric for k in policies["forecast-default"].checks] == [
            k.metric for k in proof.checks
        ]
        fetched = c.get_proof(proof.name)
        assert fetched.record == proof.record and verify_proof(fetched, _key(c)).ok
        failing = c.create_proof(prediction=REF * 2, reference=REF)
        assert failing.verdict == "FAIL"
        assert [x.name for x in c.list_proofs(verdict=proof_pb2.VERDICT_FAIL).proofs] == [
            failing.name
        ]
        assert [x.name for x in c.list_proofs(producer="nvp").proofs] == [proof.name]
        with pytest.raises(NotFoundError):
            c.get_proof("proofs/nope")


def test_sequence_policy(log_server):
    from idf.engine.forecast.physics import TransportSpec, physics_forecast

    frames = physics_forecast([REF], 20, TransportSpec(diffusivity=0.2)).frames
    with Client(log_server.target, max_attempts=1) as c:
        proof = c.create_proof(sequence=list(frames), policy="conservation-strict")
        assert proof.verdict == "PASS"  # diffusion conserves and raises entropy
        reversed_proof = c.create_proof(
            sequence=list(frames[::-1]) + [frames[0] * 1.01], policy="conservation-strict"
        )
        assert reversed_proof.verdict == "FAIL"


def test_paging_and_consistency_over_many_proofs(log_server):
    with Client(log_server.target, max_attempts=1) as c:
        names, checkpoints = [], []
        for i in range(25):
            names.append(c.create_proof(prediction=REF + i * 1e-3, reference=REF).name)
            checkpoints.append(c.checkpoint())
        seen, token = [], ""
        while True:
            page = c.list_proofs(page_size=7, page_token=token)
            seen += [p.name for p in page.proofs]
            token = page.next_page_token
            if not token:
                break
        assert seen == names[::-1]
        head = c.checkpoint()
        key = _key(c)
        proof = c.get_proof(names[3])
        for cp in checkpoints:
            hashes = c.consistency_proof(cp.tree_size, head.tree_size)
            from idf.client.merkle import verify_consistency

            assert verify_consistency(
                cp.tree_size, head.tree_size, cp.root_hash, head.root_hash, hashes
            )
        assert verify_proof(proof, key, newer_checkpoint=head, consistency=[]).checks["consistency"]


def test_idempotent_retry_returns_the_first_proof(log_server):
    with Client(log_server.target, max_attempts=1) as c:
        first = c.create_proof(prediction=REF, reference=REF, request_id="job-42")
        again = c.create_proof(prediction=REF, reference=REF, request_id="job-42")
        assert again.name == first.name and again.record == first.record
        # the same key with other inputs is a mistake, never a silent return of the first proof
        with pytest.raises(InvalidArgumentError) as info:
            c.create_proof(prediction=REF * 3, reference=REF, request_id="job-42")
        assert (
            info.value.reason == "IDEMPOTENCY_KEY_REUSED"
            and info.value.violations[0].field == "request_id"
        )
        assert c.checkpoint().tree_size == 1


def _tamper_db(data_dir: Path, sql: str, *args) -> None:
    db = sqlite3.connect(data_dir / "idf.sqlite3")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_tampering_is_detected_offline(tmp_path):
    server = ServerThread(data_dir=tmp_path)
    try:
        with Client(server.target, max_attempts=1) as c:
            key = _key(c)
            proofs = [c.create_proof(prediction=REF + i, reference=REF + 1) for i in range(6)]
            old_head = c.checkpoint()
    finally:
        server.stop()

    # 1. one byte of a stored record changed: a digit of a metric (still valid JSON), and in
    #    another record a byte that breaks the JSON
    record = bytearray(proofs[2].record)
    at = record.index(b'"rmse":') + len(b'"rmse":')
    record[at] = ord("9") if record[at] != ord("9") else ord("8")
    garbled = bytearray(proofs[1].record)
    garbled[10] ^= 1
    _tamper_db(tmp_path, "UPDATE proof_leaves SET record = ? WHERE idx = 1", bytes(garbled))
    _tamper_db(tmp_path, "UPDATE proof_leaves SET record = ? WHERE idx = 2", bytes(record))
    server = ServerThread(data_dir=tmp_path)
    try:
        with Client(server.target, max_attempts=1) as c:
            v = verify_proof(c.get_proof(proofs[2].name), key)
            assert not v.ok and "record signature" in v.failures[0]
            assert not verify_proof(c.get_proof(proofs[1].name), key).ok
    finally:
        server.stop()

    # 2. two leaves reordered (indices swapped): the head no longer extends the old one
    for i in (1, 2):  # restore the records, then reorder
        _tamper_db(
            tmp_path, f"UPDATE proof_leaves SET record = ? WHERE idx = {i}", proofs[i].record
        )
    _tamper_db(tmp_path, "UPDATE proof_leaves SET idx = -1 WHERE idx = 3")
    _tamper_db(tmp_path, "UPDATE proof_leaves SET idx = 3 WHERE idx = 4")
    _tamper_db(tmp_path, "UPDATE proof_leaves SET idx = 4 WHERE idx = -1")
    server = ServerThread(data_dir=tmp_path)
    try:
        with Client(server.target, max_attempts=1) as c:
            head = c.checkpoint()
            v = verify_proof(
                proofs[3],
                key,
                newer_checkpoint=head,
                consistency=c.consistency_proof(old_head.tree_size, head.tree_size),
            )
            assert not v.checks["consistency"]
            moved = c.get_proof(proofs[3].name)  # now served at index 4 of a different tree
            assert moved.leaf_index == 4
            assert not verify_inclusion(
                leaf_hash(proofs[3].record),
                3,
                old_head.tree_size,
                list(moved.raw.inclusion_proof.hashes),
                old_head.root_hash,
            )
    finally:
        server.stop()

    # 3. a leaf dropped: the log is shorter than a checkpoint handed out before
    _tamper_db(tmp_path, "DELETE FROM proof_leaves WHERE idx = 5")
    server = ServerThread(data_dir=tmp_path)
    try:
        with Client(server.target, max_attempts=1) as c:
            head = c.checkpoint()
            assert head.tree_size == 5
            with pytest.raises(InvalidArgumentError):
                c.consistency_proof(
                    old_head.tree_size, head.tree_size
                )  # the server cannot even claim it
            v = verify_proof(proofs[0], key, newer_checkpoint=head, consistency=[])
            assert not v.checks["consistency"]
    finally:
        server.stop()


def test_a_forged_checkpoint_or_foreign_key_fails(log_server):
    with Client(log_server.target, max_attempts=1) as c:
        proof = c.create_proof(prediction=REF, reference=REF)
    forged = proof_pb2.Proof()
    forged.CopyFrom(proof.raw)
    forged.checkpoint.tree_size += 1
    assert not verify_proof(proof, load_public_key(_other_key())).ok  # another log's key
    v = verify_proof(forged, load_public_key(_key_hex(log_server)))
    assert not v.checks["checkpoint signature"]
    relabelled = proof_pb2.Proof()
    relabelled.CopyFrom(proof.raw)
    relabelled.verdict = (
        proof_pb2.VERDICT_FAIL if proof.verdict == "PASS" else proof_pb2.VERDICT_PASS
    )
    assert not verify_proof(relabelled, load_public_key(_key_hex(log_server))).checks["verdict"]


def _key_hex(server) -> str:
    with Client(server.target, max_attempts=1) as c:
        return c.public_key().hex()


def _other_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(prediction=np.ones((4, 4)), reference=np.ones((4, 5))), "reference"),
        (dict(prediction=np.ones((4, 4), np.float32), reference=np.ones((4, 4))), "reference"),
        (dict(prediction=np.ones((4, 4)), reference=np.array([[1.0, -1.0] * 2] * 4)), "reference"),
        (dict(prediction=np.ones((4, 4)), reference=np.ones((4, 4)), policy="no-such"), "policy"),
        (dict(prediction=np.ones((4, 4))), "reference"),
        (dict(sequence=[np.ones((4, 4))], policy="conservation-strict"), "sequence"),
        (dict(prediction=np.full((4, 4), np.nan), reference=np.ones((4, 4))), "prediction"),
    ],
    ids=["shape", "dtype", "zero-total", "policy", "no-reference", "short-sequence", "nan"],
)
def test_bad_input_appends_nothing(log_server, kwargs, field):
    with Client(log_server.target, max_attempts=1) as c:
        before = c.checkpoint().tree_size
        with pytest.raises(InvalidArgumentError) as info:
            c.create_proof(**kwargs)
        assert info.value.violations[0].field == field
        assert c.checkpoint().tree_size == before


def test_concurrent_appends_lose_and_duplicate_nothing(log_server):
    def worker(i: int) -> list[str]:
        with Client(log_server.target, max_attempts=1) as c:
            return [
                c.create_proof(
                    prediction=REF + i + j / 10, reference=REF, request_id=f"w{i}-{j}"
                ).name
                for j in range(5)
            ]

    # a failure in any worker is raised here (run_in_threads), not lost in its thread
    names = [n for batch in run_in_threads(worker, [(i,) for i in range(12)]) for n in batch]
    with Client(log_server.target, max_attempts=1) as c:
        head = c.checkpoint()
        assert head.tree_size == 60 == len(set(names))
        indices = sorted(c.get_proof(n).leaf_index for n in names)
        assert indices == list(range(60))
        key = _key(c)
        assert all(verify_proof(c.get_proof(n), key).ok for n in names[:10])


@pytest.mark.postgres
def test_postgresql_store(tmp_path, postgres_url):
    server = ServerThread(data_dir=tmp_path, database_url=postgres_url)
    try:
        with Client(server.target, max_attempts=1) as c:
            proofs = [
                c.create_proof(prediction=REF + i, reference=REF, request_id=f"pg-{i}")
                for i in range(5)
            ]
            assert (
                c.create_proof(prediction=REF, reference=REF, request_id="pg-0").name
                == proofs[0].name
            )
            key = _key(c)
            head = c.checkpoint()
            assert head.tree_size == 5
            assert all(verify_proof(c.get_proof(p.name), key).ok for p in proofs)
    finally:
        server.stop()


@pytest.mark.slow
def test_sigkill_during_appends_leaves_a_consistent_log(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(env={"IDF_DATA_DIR": str(data)})
    checkpoints: list[proof_pb2.Checkpoint] = []
    crash = threading.Event()

    def appender(i: int) -> None:
        with Client(server.target, max_attempts=1, timeout=10) as c:
            n = 0
            while True:
                try:
                    p = c.create_proof(prediction=REF + i + n * 1e-3, reference=REF)
                except Exception:  # noqa: BLE001 - the server dies under us; before that, a failure
                    if crash.is_set():
                        return
                    raise
                checkpoints.append(p.raw.checkpoint)
                n += 1

    with ThreadPoolExecutor(1) as pool:
        appenders = pool.submit(run_in_threads, appender, [(i,) for i in range(4)])
        try:
            # killed once appends are well under way (not after a fixed sleep: under load they may
            # not have started); the appends of 4 clients are in flight when it lands
            wait_until(lambda: len(checkpoints) >= 20 or appenders.done(), "20 appends")
        finally:
            crash.set()
            server.kill()  # SIGKILL, mid-stream
        appenders.result()  # an append that failed before the kill fails the test
    assert len(checkpoints) > 10
    restarted = ServerThread(data_dir=data)
    try:
        with Client(restarted.target, max_attempts=1) as c:
            key = _key(c)
            head = c.checkpoint()
            assert head.tree_size >= max(cp.tree_size for cp in checkpoints)
            for cp in checkpoints:  # every head handed out before the crash is a prefix of this one
                from idf.client.merkle import verify_consistency

                assert verify_consistency(
                    cp.tree_size,
                    head.tree_size,
                    cp.root_hash,
                    head.root_hash,
                    c.consistency_proof(cp.tree_size, head.tree_size),
                )
            listed, token = [], ""
            while True:
                page = c.list_proofs(page_size=1000, page_token=token)
                listed += list(page.proofs)
                token = page.next_page_token
                if not token:
                    break
            assert len(listed) == head.tree_size
            assert all(verify_proof(c.get_proof(p.name), key).ok for p in listed)
    finally:
        restarted.stop()


def test_cli_validate_and_verify(log_server, tmp_path):
    from idf.client.fields import FieldMeta
    from idf.client.formats import save_reference_h5

    runner = CliRunner()
    np.save(tmp_path / "p.npy", REF * 1.001)
    save_reference_h5(tmp_path / "ref.h5", REF, FieldMeta(spacing=(1.0, 1.0)))
    out = tmp_path / "proof.json"
    r = runner.invoke(
        app,
        [
            "validate",
            "--prediction",
            str(tmp_path / "p.npy"),
            "--ground-truth",
            str(tmp_path / "ref.h5"),
            "--out",
            str(out),
            "--server",
            log_server.target,
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verdict"] == "PASS"
    key = tmp_path / "key.pem"
    assert (
        runner.invoke(
            app, ["proof", "key", "--out", str(key), "--server", log_server.target]
        ).exit_code
        == 0
    )
    size = proof_from_json(out.read_text()).checkpoint.tree_size
    head = tmp_path / "head.json"
    with Client(log_server.target) as c:
        c.create_proof(prediction=REF, reference=REF)
    assert (
        runner.invoke(
            app,
            [
                "proof",
                "head",
                "--out",
                str(head),
                "--since",
                str(size),
                "--server",
                log_server.target,
            ],
        ).exit_code
        == 0
    )
    r = runner.invoke(
        app,
        [
            "proof",
            "verify",
            str(out),
            "--public-key",
            str(key),
            "--head",
            str(head),
            "--prediction",
            str(tmp_path / "p.npy"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"]
    # a malformed proof file: a clear error, exit 1
    (tmp_path / "bad.json").write_text("{not json")
    r = runner.invoke(
        app, ["proof", "verify", str(tmp_path / "bad.json"), "--public-key", str(key)]
    )
    assert r.exit_code == 1 and "cannot read" in r.output
    # a tampered proof file: exit 5
    doc = json.loads(out.read_text())
    doc["policy"] = "reconstruction-default"
    (tmp_path / "t.json").write_text(json.dumps(doc))
    r = runner.invoke(app, ["proof", "verify", str(tmp_path / "t.json"), "--public-key", str(key)])
    assert r.exit_code == 5 and "NOT VERIFIED" in r.output
