"""Authentication and authorisation (issue 15, first part): permissions declared in the contract,
API keys (hashed, shown once, revocable, expiring), roles, one enforcement point for the gRPC and
REST faces, audit events without secrets, and a server bound beyond loopback refusing to start
without auth. Real servers on loopback; the matrix calls every RPC of the contract with every
role's key."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from helpers import ServerThread

from idf.client import (
    Client,
    IdfError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from idf.server import auth
from idf.server.config import ROLES, Settings
from idf.store.keys import KeyStore
from idf.v1 import access_pb2

ADMIN = "bootstrap-admin-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerThread(
        data_dir=tmp_path_factory.mktemp("auth"), auth="api-key", admin_token=ADMIN, rest_port=0
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keys(server) -> dict[str, str]:
    """One key per configured role, created by the bootstrap administrator."""
    with Client(server.target, api_key=ADMIN, max_attempts=1) as c:
        return {role: c.create_api_key(f"{role}-bot", [role]).secret for role in ROLES}


def test_every_rpc_of_the_contract_declares_its_permission():
    permissions = auth.method_permissions()
    assert len(permissions) >= 28
    missing = sorted(rpc for rpc, p in permissions.items() if not p)
    assert missing == [], f"RPCs without option (idf.v1.permission): {missing}"
    granted = set().union(*(set(v) for v in ROLES.values())) - {"*"}
    assert set(permissions.values()) - granted == {"market.admin", "keys.admin"}  # admin only


def test_an_rpc_without_the_option_is_refused():
    """A method whose descriptor lacks the option (a proto edit that forgot it) is denied even
    to an administrator: deny by default."""
    authority = auth.Authority("off", None)
    authority.mode = "api-key"  # checked below without a store: the admin token authenticates
    authority.admin_token = "t"
    authority.permissions["idf.v1.PredictService/Predict"] = ""
    with pytest.raises(auth.ApiError) as e:
        authority.check("idf.v1.PredictService/Predict", [("authorization", "Bearer t")])
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert access_pb2.permission.number == 50101


def test_keys_are_shown_once_and_stored_hashed(server, keys, tmp_path):
    with Client(server.target, api_key=ADMIN, max_attempts=1) as c:
        created = c.create_api_key("reporting", ["viewer"], description="dashboards")
        assert created.secret.startswith(created.api_key.prefix + "_")
        assert created.secret not in repr(created)  # not printed by accident
        listed = {k.name: k for k in c.list_api_keys().api_keys}
    key = listed[created.api_key.name]
    assert key.roles == ["viewer"] and key.description == "dashboards" and key.revoke_time is None
    db = server.running.keys.db
    rows = db.all("SELECT secret_hash FROM api_keys")
    assert all(created.secret not in str(r) for r in rows)
    assert any(
        r[0] == __import__("hashlib").sha256(created.secret.encode()).hexdigest() for r in rows
    )


def test_roles_grant_what_the_configuration_says(server, keys):
    field = np.ones((8, 8), np.float32)
    with Client(server.target, api_key=keys["operator"], max_attempts=1) as c:
        assert c.predict(field, 1, diffusivity=0.1).frames.shape == (1, 8, 8)
    with Client(server.target, api_key=keys["viewer"], max_attempts=1) as c:
        c.list_proofs()  # proofs.read
        with pytest.raises(PermissionDeniedError) as e:
            c.predict(field, 1, diffusivity=0.1)
        assert "predict.run" in e.value.message
    with Client(server.target, api_key=keys["trader"], max_attempts=1) as c:
        with pytest.raises(PermissionDeniedError):
            c.mint("alice", "CEU", 10)
    with Client(server.target, api_key=keys["admin"], max_attempts=1) as c:
        with pytest.raises(PermissionDeniedError):  # an account no key of its tenant grants
            c.mint("alice", "CEU", 10)
        c.create_api_key("treasurer", ["trader"], accounts=["house"])  # now the tenant's account
        assert c.mint("house", "CEU", 10).balance == 10  # a tenant's admin mints into its accounts


def test_anonymous_callers_read_the_catalogue_and_log_only(server):
    with Client(server.target, max_attempts=1) as c:
        assert c.list_models() and c.public_key()
        with pytest.raises(UnauthenticatedError) as e:
            c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1)
        assert "needs credentials" in e.value.message
        with pytest.raises(UnauthenticatedError):
            c.list_api_keys()


def _bad_credentials(server) -> dict[str, str]:
    store = KeyStore(server.settings.store_url())
    try:
        _, expired = store.create("old", "default", ("admin",), ttl=10, now=time.time() - 100)
        _, revoked = store.create("gone", "default", ("admin",))
    finally:
        store.close()
    with Client(server.target, api_key=ADMIN, max_attempts=1) as c:
        c.revoke_api_key(f"keys/{revoked[4:16]}")
    well_formed = "idf_abcdefghijkl_" + "A" * 43
    return {
        "malformed scheme": "Basic dXNlcjpwYXNz",
        "empty bearer": "Bearer ",
        "unknown key": f"Bearer {well_formed}",
        "truncated key": f"Bearer {expired[:-1]}",
        "right id, wrong secret": f"Bearer {expired[:17]}{'B' * 43}",
        "expired key": f"Bearer {expired}",
        "revoked key": f"Bearer {revoked}",
        "not a key": "Bearer eyJhbGciOiJub25lIn0.e30.",
    }


def test_bad_credentials_of_every_kind_are_refused_alike_and_audited(server, caplog):
    bad = _bad_credentials(server)
    messages = set()
    with caplog.at_level(logging.WARNING, logger="idf.audit"):
        for cause, header in bad.items():
            with Client(server.target, metadata=[("authorization", header)], max_attempts=1) as c:
                with pytest.raises(UnauthenticatedError) as e:
                    c.list_models()  # even the anonymous catalogue: a bad credential is never anonymous
                messages.add(e.value.message)
    assert messages == {"the credential is not valid"}, f"{messages}: one answer, no oracle"
    events = [r for r in caplog.records if getattr(r, "event", "") == "auth.refused"]
    assert len(events) >= len(bad)
    causes = {getattr(r, "cause", "") for r in events}
    assert {
        "revoked key",
        "expired key",
        "unknown or malformed key",
        "malformed authorization header",
    } <= causes
    logged = " ".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert all(h.removeprefix("Bearer ")[17:] not in logged for h in bad.values() if len(h) > 40)


def test_revocation_is_immediate_and_tenant_scoped(server):
    with Client(server.target, api_key=ADMIN, max_attempts=1) as admin:
        created = admin.create_api_key("temp", ["viewer"])
        with Client(server.target, api_key=created.secret, max_attempts=1) as c:
            c.list_proofs()
            admin.revoke_api_key(created.api_key.name)
            with pytest.raises(UnauthenticatedError):
                c.list_proofs()
        again = admin.revoke_api_key(created.api_key.name)  # idempotent
        assert again.revoke_time is not None
        store = KeyStore(server.settings.store_url())
        try:
            other, _ = store.create("theirs", "other-tenant", ("admin",))
        finally:
            store.close()
        assert other.key_id not in {k.name for k in admin.list_api_keys(page_size=1000).api_keys}
        with pytest.raises(NotFoundError):
            admin.revoke_api_key(f"keys/{other.key_id}")


def _http(server, method: str, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.running.rest_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_the_rest_face_enforces_the_same_rules(server, keys):
    body = {"principal": "rest-made", "roles": ["viewer"]}
    assert _http(server, "GET", "/v1/models")[0] == 200
    status, error = _http(server, "POST", "/v1/keys", body)
    assert status == 401 and error["details"][0]["reason"] == "UNAUTHENTICATED"
    assert _http(server, "POST", "/v1/keys", body, keys["viewer"])[0] == 403
    status, made = _http(server, "POST", "/v1/keys", body, keys["admin"])
    assert status == 200 and made["secret"].startswith("idf_")
    assert _http(server, "GET", "/v1/keys", token=made["secret"])[0] == 403  # a viewer key
    assert _http(server, "GET", "/v1/keys", token="idf_nope")[0] == 401


def _call(
    channel: grpc.Channel, rpc: str, streaming: tuple[bool, bool], metadata
) -> grpc.StatusCode:
    path = "/" + rpc
    try:
        if streaming == (False, False):
            channel.unary_unary(path)(b"", metadata=metadata, timeout=30)
        elif streaming == (False, True):
            for _ in channel.unary_stream(path)(b"", metadata=metadata, timeout=30):
                break
        elif streaming == (True, False):
            channel.stream_unary(path)(iter([b""]), metadata=metadata, timeout=30)
        else:
            for _ in channel.stream_stream(path)(iter([b""]), metadata=metadata, timeout=30):
                break
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_every_rpc_times_every_role(server, keys):
    """The generated matrix: each RPC of the contract, called with an empty request by each role
    (and anonymously), is refused exactly when the configured roles do not grant its permission;
    otherwise it reaches the servicer (whatever it then answers)."""
    streaming = {}
    for module in auth.contract_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                streaming[f"{service.full_name}/{m.name}"] = (
                    m.client_streaming,
                    m.server_streaming,
                )
    permissions = auth.method_permissions()
    refused = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    wrong, seen = [], {True: 0, False: 0}
    with grpc.insecure_channel(server.target) as channel:
        for rpc, permission in sorted(permissions.items()):
            for role in (*ROLES, None):
                granted = set(ROLES[role]) if role else set(auth.ANONYMOUS)
                allowed = "*" in granted or permission in granted
                metadata = [("authorization", f"Bearer {keys[role]}")] if role else []
                code = _call(channel, rpc, streaming[rpc], metadata)
                seen[allowed] += 1
                if allowed == (code in refused):
                    wrong.append(f"{rpc} as {role or 'anonymous'}: {code.name}")
    assert wrong == []
    assert (
        seen[True] >= 28 + 4 and seen[False] >= 28
    )  # admins pass everywhere; anonymous mostly not


def test_beyond_loopback_auth_is_required(tmp_path):
    with pytest.raises(ValueError, match="api-key"):
        Settings(host="0.0.0.0", data_dir=tmp_path, auth="off")
    assert Settings(host="0.0.0.0", data_dir=tmp_path).auth == "api-key"  # the default
    Settings(host="::1", data_dir=tmp_path, auth="off")
    Settings(host="localhost", data_dir=tmp_path, auth="off")


def test_the_cli_takes_credentials_and_manages_keys(server, monkeypatch):
    from typer.testing import CliRunner

    from idf.cli.main import app

    runner = CliRunner()
    where = ["--server", server.target, "--json"]
    made = runner.invoke(
        app, ["--api-key", ADMIN, "keys", "create", "ci", "--role", "viewer", *where]
    )
    assert made.exit_code == 0, made.output
    secret = json.loads(made.output)["secret"]
    monkeypatch.setenv("IDF_API_KEY", secret)
    listed = runner.invoke(app, ["keys", "list", *where])  # a viewer key: refused, exit 4
    assert listed.exit_code == 4 and "PERMISSION_DENIED" in listed.output
    name = json.loads(made.output)["name"]
    monkeypatch.delenv("IDF_API_KEY")
    revoked = runner.invoke(app, ["--api-key", ADMIN, "keys", "revoke", name, *where])
    assert revoked.exit_code == 0 and json.loads(revoked.output)["revoked"] is not None
    listed = runner.invoke(app, ["--api-key", ADMIN, "keys", "list", *where])
    assert name in {k["name"] for k in json.loads(listed.output)["keys"]}


@pytest.fixture(scope="module")
def billing(tmp_path_factory):
    """Auth on and metering on: keys name the accounts they act and pay for."""
    s = ServerThread(
        data_dir=tmp_path_factory.mktemp("billing"),
        auth="api-key",
        admin_token=ADMIN,
        metering=True,
    )
    with Client(s.target, api_key=ADMIN, max_attempts=1) as c:
        for who in ("alice", "bob"):
            c.mint(who, "CEU", 10**6)
            c.mint(who, "PFT", 10**6)
        s.alice = c.create_api_key("alice", ["operator", "trader"], accounts=["alice"]).secret
        s.bob = c.create_api_key("bob", ["operator", "trader"], accounts=["bob"]).secret
    yield s
    s.stop()


def _ceu(server, who: str) -> int:
    return server.running.ledger.balances(f"market/accounts/{who}").get("CEU", 0)


def test_a_caller_pays_from_its_own_accounts_only(billing):
    """The probe of the issue: five Predicts with `x-idf-account: alice` billed Alice. Now the
    header only selects among the caller's own accounts."""
    field = np.ones((16, 16), np.float32)
    bob_before, alice_before = _ceu(billing, "bob"), _ceu(billing, "alice")
    as_bob = [("x-idf-account", "market/accounts/alice")]
    with Client(billing.target, api_key=billing.bob, metadata=as_bob, max_attempts=1) as c:
        with pytest.raises(PermissionDeniedError) as e:
            c.predict(field, 2, diffusivity=0.1)
    assert e.value.reason == "ACCOUNT_NOT_GRANTED"
    assert e.value.violations[0].field == "metadata.x-idf-account"
    with Client(billing.target, api_key=billing.bob, max_attempts=1) as c:
        charged = c.predict(field, 2, diffusivity=0.1).usage.charged_ceu  # no header: bob's own
    assert charged > 0
    assert _ceu(billing, "alice") == alice_before and _ceu(billing, "bob") == bob_before - charged


def test_market_writes_and_reads_check_the_account(billing):
    with Client(billing.target, api_key=billing.bob, max_attempts=1) as c:
        with pytest.raises(PermissionDeniedError) as e:
            c.swap("alice", "CEU", amount_in=1000)  # the sandwich probe: spend alice's CEU
        assert e.value.violations[0].field == "account"
        with pytest.raises(PermissionDeniedError):
            c.get_balance("alice")
        with pytest.raises(PermissionDeniedError):
            c.list_transactions("alice")
        assert c.get_balance("bob")["CEU"] > 0
    with Client(billing.target, api_key=ADMIN, max_attempts=1) as c:
        assert c.get_balance("alice")["CEU"] > 0  # administrators read any account


def test_an_account_belongs_to_the_tenant_that_granted_it(billing):
    store = KeyStore(billing.settings.store_url())
    try:
        with pytest.raises(Exception, match="belongs to another tenant"):
            store.create(
                "mallory", "other-tenant", ("trader",), accounts=("market/accounts/alice",)
            )
        key, _ = store.create(
            "carol", "other-tenant", ("trader",), accounts=("market/accounts/carol",)
        )
        assert store.tenant_of("market/accounts/carol") == "other-tenant"
    finally:
        store.close()
    with Client(billing.target, api_key=ADMIN, max_attempts=1) as c:  # tenant "default"
        with pytest.raises(PermissionDeniedError) as e:
            c.create_api_key("thief", ["trader"], accounts=["bob", "carol"])
        assert e.value.reason == "ACCOUNT_OF_ANOTHER_TENANT"
        assert e.value.violations[0].field == "accounts[1]"
        assert "thief" not in {k.principal for k in c.list_api_keys(page_size=1000).api_keys}
        with pytest.raises(InvalidArgumentError):
            c.create_api_key("x", ["viewer"], accounts=["market/accounts/-treasury"])


def test_a_burst_past_the_bucket_is_refused_with_retry_information(tmp_path):
    """Token buckets per principal (rate so low that no token comes back during the test: the
    outcome does not depend on the machine's speed); other principals are unaffected; the REST
    face answers 429 with Retry-After; engine work has its own bucket."""
    s = ServerThread(
        data_dir=tmp_path, auth="api-key", admin_token=ADMIN, rest_port=0,
        rate_limit_requests_per_s=0.001, rate_limit_burst=3,
        rate_limit_site_updates_per_s=0.001, max_call_site_updates=10_000,
    )  # fmt: skip
    try:
        with Client(s.target, api_key=ADMIN, max_attempts=1) as admin:
            one = admin.create_api_key("one", ["operator"]).secret
            two = admin.create_api_key("two", ["operator"]).secret
        with Client(s.target, api_key=one, max_attempts=1) as c:
            for _ in range(3):
                c.list_models()
            with pytest.raises(ResourceExhaustedError) as e:
                c.list_models()
            assert e.value.reason == "RATE_LIMITED" and e.value.retry_after > 100
        status, error = _http(s, "GET", "/v1/models", token=one)
        assert status == 429 and error["details"][0]["reason"] == "RATE_LIMITED"
        with Client(s.target, api_key=two, max_attempts=1) as c:
            field = np.ones((10, 10), np.float32)
            c.predict(field, 50, diffusivity=0.1)  # 5,000 site updates of the 10,000 bucket
            c.predict(field, 50, diffusivity=0.1)
            with pytest.raises(ResourceExhaustedError) as e:
                c.predict(field, 50, diffusivity=0.1)  # the work bucket is empty, requests are not
            assert e.value.reason == "RATE_LIMITED" and "engine work" in e.value.message
    finally:
        s.stop()


def test_a_tenants_engine_work_quota_binds_all_its_principals(tmp_path):
    s = ServerThread(
        data_dir=tmp_path, auth="api-key", admin_token=ADMIN, max_call_site_updates=10_000,
        rate_limit_site_updates_per_s=1e9, tenant_rate_limit_site_updates_per_s=0.001,
    )  # fmt: skip
    try:
        with Client(s.target, api_key=ADMIN, max_attempts=1) as admin:
            a, b = (admin.create_api_key(n, ["operator"]).secret for n in ("a", "b"))
            other = admin.create_api_key("c", ["operator"], tenant="elsewhere").secret
        field = np.ones((10, 10), np.float32)
        with Client(s.target, api_key=a, max_attempts=1) as c:
            c.predict(field, 100, diffusivity=0.1)  # 10,000: the tenant's whole bucket
        with Client(s.target, api_key=b, max_attempts=1) as c:
            with pytest.raises(ResourceExhaustedError) as e:
                c.predict(field, 1, diffusivity=0.1)
            assert "this tenant" in e.value.message
        with Client(s.target, api_key=other, max_attempts=1) as c:
            c.predict(field, 100, diffusivity=0.1)  # another tenant's quota is its own
    finally:
        s.stop()


def test_proofs_are_read_and_listed_within_their_tenant(server, keys):
    """One global log (checkpoints cover every tenant's leaves), but a proof is its tenant's: another
    tenant cannot read it, list it, or collide with its request ids."""
    store = KeyStore(server.settings.store_url())
    try:
        _, theirs = store.create("them", "other-tenant", ("operator",))
    finally:
        store.close()
    ref = np.linspace(1, 2, 64, dtype=np.float32).reshape(8, 8)
    with Client(server.target, api_key=keys["operator"], max_attempts=1) as ours:
        mine = ours.create_proof(prediction=ref * 1.001, reference=ref, request_id="same-id")
        with Client(server.target, api_key=theirs, max_attempts=1) as other:
            with pytest.raises(NotFoundError):
                other.get_proof(mine.name)
            assert mine.name not in {p.name for p in other.list_proofs(page_size=1000).proofs}
            their = other.create_proof(prediction=ref * 1.001, reference=ref, request_id="same-id")
            assert their.name != mine.name  # their request id, not ours
            assert other.get_proof(their.name).record == their.record
            size = other.checkpoint().tree_size
        assert ours.get_proof(mine.name).record == mine.record
        assert their.name not in {p.name for p in ours.list_proofs(page_size=1000).proofs}
        assert ours.checkpoint().tree_size == size  # one log


def test_a_new_project_has_auth_on_and_its_cli_holds_the_admin_credential(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from idf.cli.main import app

    runner = CliRunner()
    project = tmp_path / "site"
    assert runner.invoke(app, ["init", str(project), "--json"]).exit_code == 0
    config = project / "idf.toml"
    assert config.stat().st_mode & 0o077 == 0  # a credential: readable by its owner only
    settings = Settings.load(config)
    assert settings.auth == "api-key" and len(settings.admin_token or "") >= 40
    assert settings.client["api_key"] == settings.admin_token
    s = ServerThread(**{**settings.model_dump(), "port": 0, "data_dir": tmp_path / "data"})
    try:
        monkeypatch.chdir(project)  # the CLI reads ./idf.toml
        listed = runner.invoke(app, ["keys", "list", "--server", s.target, "--json"])
        assert listed.exit_code == 0, listed.output
        monkeypatch.chdir(tmp_path)  # no project here: no credential
        refused = runner.invoke(app, ["keys", "list", "--server", s.target, "--json"])
        assert refused.exit_code == 4 and "UNAUTHENTICATED" in refused.output
        named = runner.invoke(
            app, ["--config", str(config), "keys", "list", "--server", s.target, "--json"]
        )
        assert named.exit_code == 0, named.output
    finally:
        s.stop()


def test_tenants_are_made_by_the_operator_and_their_admins_stay_inside(billing):
    """The bootstrap admin token (the deployment's operator) creates keys in a new tenant; that
    tenant's administrator can neither create keys elsewhere nor act for another tenant's
    accounts, while acting for its own."""
    with Client(billing.target, api_key=ADMIN, max_attempts=1) as operator:
        boss = operator.create_api_key("boss", ["admin"], accounts=["acme-main"], tenant="acme")
    assert boss.api_key.tenant == "acme"
    with Client(billing.target, api_key=boss.secret, max_attempts=1) as acme:
        with pytest.raises(PermissionDeniedError) as e:
            acme.create_api_key("spy", ["viewer"], tenant="default")
        assert e.value.reason == "OTHER_TENANT"
        worker = acme.create_api_key("worker", ["trader"], accounts=["acme-ops"])
        assert worker.api_key.tenant == "acme"
        assert {k.principal for k in acme.list_api_keys().api_keys} == {"boss", "worker"}
        with pytest.raises(PermissionDeniedError):
            acme.get_balance("bob")  # the default tenant's account
        with pytest.raises(PermissionDeniedError):
            acme.mint("bob", "CEU", 1)
        assert acme.mint("acme-ops", "CEU", 5).balance == 5
        assert acme.get_balance("acme-ops")["CEU"] == 5


def test_a_forwarded_certificate_name_needs_the_gateways_secret(tmp_path):
    """The REST face vouches for the client certificate it verified with a per-process secret; a
    gRPC caller sending the same metadata with a guessed secret is anonymous, and a REST caller's
    own x-idf-client-cn header is never forwarded."""
    s = ServerThread(
        data_dir=tmp_path, auth="api-key", admin_token=ADMIN, rest_port=0,
        mtls_identities={"ci-bot": {"roles": ["admin"]}},
    )  # fmt: skip
    try:
        spoof = [("x-idf-client-cn", "ci-bot"), ("x-idf-gateway", "guessed")]
        with Client(s.target, metadata=spoof, max_attempts=1) as c:
            with pytest.raises(UnauthenticatedError):
                c.list_api_keys()
        req = urllib.request.Request(
            f"http://127.0.0.1:{s.running.rest_port}/v1/keys", headers={"X-Idf-Client-Cn": "ci-bot"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 401
    finally:
        s.stop()


def _rest_path(method) -> tuple[str, str, bool]:
    """A concrete (verb, path, has body) of a method's google.api.http rule: each path variable
    filled with a placeholder that fits its pattern."""
    from google.api import annotations_pb2

    rule = method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    template = getattr(rule, verb)
    path = re.sub(r"\{[^}=]+=([^}]*)\}", lambda m: m.group(1).replace("*", "x"), template)
    path = re.sub(r"\{[^}]+\}", "x", path)
    return verb.upper(), path, bool(rule.body)


def test_every_rpc_times_every_role_on_the_rest_face(server, keys):
    """The matrix again through HTTP: 401/403 exactly when the role lacks the RPC's permission
    (a client stream, Publish, takes the body as its one message). The placeholder
    account belongs to no key, so roles that pass reach the account rule (ACCOUNT_NOT_GRANTED)."""
    permissions = auth.method_permissions()
    wrong, seen = [], 0
    for module in auth.contract_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                verb, path, has_body = _rest_path(m)
                permission = permissions[f"{service.full_name}/{m.name}"]
                for role in (*ROLES, None):
                    granted = set(ROLES[role]) if role else set(auth.ANONYMOUS)
                    allowed = "*" in granted or permission in granted
                    status, body = _http(
                        server, verb, path, {} if has_body else None, keys[role] if role else None
                    )
                    seen += 1
                    reason = (
                        (body.get("details") or [{}])[0].get("reason")
                        if isinstance(body, dict)
                        else None
                    )
                    refused = status == 401 or (status == 403 and reason != "ACCOUNT_NOT_GRANTED")
                    if (
                        allowed == refused
                    ):  # (an account check past the role check is the next rule)
                        wrong.append(f"{verb} {path} as {role or 'anonymous'}: {status}")
    assert wrong == [], "\n".join(wrong)
    assert seen >= 25 * 5


# RPC -> (its permission, a call acting for `account` through client `c`)
_ACCOUNT_CALLS = {
    "GetBalance": ("market.read", lambda c, a: c.get_balance(a)),
    "ListTransactions": ("market.read", lambda c, a: c.list_transactions(a)),
    "Swap": ("market.trade", lambda c, a: c.swap(a, "CEU", amount_in=10)),
    "AddLiquidity": ("market.trade", lambda c, a: c.add_liquidity(a, 10, 10)),
    "RemoveLiquidity": ("market.trade", lambda c, a: c.remove_liquidity(a, 1)),
    "Mint": ("market.admin", lambda c, a: c.mint(a, "CEU", 1)),
}
# the same for the calls whose account is the x-idf-account header (it names whom to bill)
_HEADER_CALLS = {
    "Predict": (
        "predict.run",
        lambda c: c.predict(np.ones((4, 4), np.float32), 1, diffusivity=0.1),
    ),
    "CreateProof": (
        "proofs.write",
        lambda c: c.create_proof(prediction=np.ones(4), reference=np.ones(4)),
    ),
}


def test_every_account_rpc_times_every_role_times_whose_account(server):
    """The generated matrix of the account rule: each RPC that acts for an account, by each role,
    for the caller's own account, another account of its tenant and another tenant's account.
    Allowed exactly when the role grants the permission and the account is the caller's (or the
    caller is its tenant's administrator and the account its tenant's); refusals are
    PERMISSION_DENIED, anything else (a rule of the market, a balance) means the call got past."""
    with Client(server.target, api_key=ADMIN, max_attempts=1) as operator:
        keys = {
            role: operator.create_api_key(f"m-{role}", [role], accounts=[f"m-{role}"]).secret for role in ROLES
        }  # fmt: skip
        operator.create_api_key("m-neighbour", ["viewer"], accounts=["m-neighbour"])
        operator.create_api_key("m-foreigner", ["viewer"], accounts=["m-foreign"], tenant="m-other")
    wrong, seen = [], 0
    for role, secret in keys.items():
        granted = set(ROLES[role])
        for whose, account in (
            ("own", f"m-{role}"),
            ("same tenant", "m-neighbour"),
            ("other tenant", "m-foreign"),
        ):
            mine = whose == "own" or (role == "admin" and whose == "same tenant")
            calls = [
                (rpc, p, lambda c, f=f, a=account: f(c, a))
                for rpc, (p, f) in _ACCOUNT_CALLS.items()
            ]
            calls += [(rpc, p, f) for rpc, (p, f) in _HEADER_CALLS.items()]
            metadata = [("x-idf-account", f"market/accounts/{account}")]
            with Client(server.target, api_key=secret, metadata=metadata, max_attempts=1) as c:
                for rpc, permission, call in calls:
                    expected = ("*" in granted or permission in granted) and mine
                    try:
                        call(c)
                        refused = False
                    except (PermissionDeniedError, UnauthenticatedError):
                        refused = True
                    except IdfError:
                        refused = False  # past the auth rules: the market's own answer
                    seen += 1
                    if expected == refused:
                        wrong.append(
                            f"{rpc} by {role} for the {whose} account: {'refused' if refused else 'allowed'}"
                        )
    assert wrong == [], "\n".join(wrong)
    assert seen == len(ROLES) * 3 * (len(_ACCOUNT_CALLS) + len(_HEADER_CALLS))


def test_every_tenant_scoped_rpc_times_every_role_times_whose_tenant(server):
    """The matrix of the tenant rule for the resources that belong to a tenant (proofs, keys): each
    role reads or revokes its own tenant's and another tenant's. Another tenant's resource does not
    exist for the caller (NOT_FOUND); its own is allowed exactly when the role grants it."""
    ref = np.linspace(1, 2, 64).reshape(8, 8)
    with Client(server.target, api_key=ADMIN, max_attempts=1) as operator:
        ours = operator.create_api_key("t-maker", ["operator"]).secret
        theirs = operator.create_api_key("t-maker", ["operator"], tenant="t-other").secret
        victims = {
            (role, whose): operator.create_api_key(
                f"t-victim-{role}", ["viewer"], tenant="default" if whose == "own" else "t-other"
            ).api_key.name
            for role in ROLES
            for whose in ("own", "other")
        }
    proofs = {}
    for whose, secret in (("own", ours), ("other", theirs)):
        with Client(server.target, api_key=secret, max_attempts=1) as c:
            proofs[whose] = c.create_proof(prediction=ref * 1.001, reference=ref).name
    keys = {}
    with Client(server.target, api_key=ADMIN, max_attempts=1) as operator:
        keys = {role: operator.create_api_key(f"t-{role}", [role]).secret for role in ROLES}
    calls = {
        "GetProof": ("proofs.read", lambda c, role, whose: c.get_proof(proofs[whose])),
        "ListProofs": (
            "proofs.read",
            lambda c, role, whose: (
                None if proofs[whose] in {p.name for p in c.list_proofs(page_size=1000).proofs}
                else (_ for _ in ()).throw(NotFoundError(grpc.StatusCode.NOT_FOUND, "not listed"))
            ),
        ),
        "RevokeApiKey": ("keys.admin", lambda c, role, whose: c.revoke_api_key(victims[(role, whose)])),
    }  # fmt: skip
    wrong = []
    for role, secret in keys.items():
        granted = set(ROLES[role])
        with Client(server.target, api_key=secret, max_attempts=1) as c:
            for whose in ("own", "other"):
                for rpc, (permission, call) in calls.items():
                    expected = ("*" in granted or permission in granted) and whose == "own"
                    try:
                        call(c, role, whose)
                        refused = False
                    except (PermissionDeniedError, UnauthenticatedError, NotFoundError):
                        refused = True
                    if expected == refused:
                        wrong.append(
                            f"{rpc} by {role} of the {whose} tenant: {'refused' if refused else 'allowed'}"
                        )
    # the same through the REST face (revoking again is idempotent: the answer is the key's record)
    from idf.v1 import keys_pb2, proof_pb2

    rest = {
        "GetProof": ("proofs.read", proof_pb2.DESCRIPTOR.services_by_name["ProofService"].methods_by_name["GetProof"],
                     lambda role, whose: proof_pb2.GetProofRequest(name=proofs[whose])),
        "RevokeApiKey": ("keys.admin", keys_pb2.DESCRIPTOR.services_by_name["KeyService"].methods_by_name["RevokeApiKey"],
                         lambda role, whose: keys_pb2.RevokeApiKeyRequest(name=victims[(role, whose)])),
    }  # fmt: skip
    for role, secret in keys.items():
        granted = set(ROLES[role])
        for whose in ("own", "other"):
            for rpc, (permission, method, build) in rest.items():
                expected = ("*" in granted or permission in granted) and whose == "own"
                status = _rest_request(server, method, build(role, whose), secret)
                refused = status in (401, 403, 404, 4031)
                if expected == refused:
                    wrong.append(f"REST {rpc} by {role} of the {whose} tenant: HTTP {status}")
    assert wrong == [], "\n".join(wrong)


def _rest_request(server, method, message, token: str, headers: dict | None = None) -> int:
    """`message` sent to `method` through the REST face, as grpc-gateway maps it: path variables
    from the message's fields, the rest as the JSON body (or, for GETs, nothing else here)."""
    from google.api import annotations_pb2
    from google.protobuf import json_format

    rule = method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    used = []

    def fill(m: re.Match) -> str:
        used.append(m.group(1))
        value = message
        for part in m.group(1).split("."):
            value = getattr(value, part)
        return str(value)

    path = re.sub(r"\{([^}=]+)(?:=[^}]*)?\}", fill, getattr(rule, verb))
    body = json_format.MessageToDict(message) if rule.body else None
    for name in used:  # a path variable is not repeated in the body
        (body or {}).pop(re.sub(r"_([a-z])", lambda x: x.group(1).upper(), name), None)
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.running.rest_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=verb.upper(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        reason = (json.loads(e.read() or b"{}").get("details") or [{}])[0].get("reason")
        return e.code if reason != "ACCOUNT_NOT_GRANTED" else 4031


def test_the_account_matrix_on_the_rest_face(server):
    """The account matrix again through HTTP (the same requests, transcoded): 403 with
    ACCOUNT_NOT_GRANTED exactly where gRPC refuses for the account, 403 for the role."""
    from idf.client import _protocol as p
    from idf.v1 import market_pb2, predict_pb2, proof_pb2

    market = market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods_by_name
    with Client(server.target, api_key=ADMIN, max_attempts=1) as operator:
        keys = {
            r: operator.create_api_key(f"h-{r}", [r], accounts=[f"h-{r}"]).secret for r in ROLES
        }
        operator.create_api_key("h-neighbour", ["viewer"], accounts=["h-neighbour"])
        operator.create_api_key("h-foreigner", ["viewer"], accounts=["h-foreign"], tenant="h-other")
    ref = np.linspace(1, 2, 64)
    calls = {
        "GetBalance": ("market.read", market["GetBalance"], lambda a: market_pb2.GetBalanceRequest(account=a)),
        "Swap": ("market.trade", market["Swap"], lambda a: p.swap_request(a, "CEU", amount_in=10)),
        "Mint": ("market.admin", market["Mint"], lambda a: p.mint_request(a, "CEU", 1)),
        "Predict": ("predict.run", predict_pb2.DESCRIPTOR.services_by_name["PredictService"].methods_by_name["Predict"],
                    lambda a: p.predict_request(np.ones((4, 4), np.float32), 1, diffusivity=0.1)),
        "CreateProof": ("proofs.write", proof_pb2.DESCRIPTOR.services_by_name["ProofService"].methods_by_name["CreateProof"],
                        lambda a: p.create_proof_request(prediction=ref, reference=ref * 1.001)),
    }  # fmt: skip
    wrong = []
    for role, secret in keys.items():
        granted = set(ROLES[role])
        for whose, name in (
            ("own", f"h-{role}"),
            ("same tenant", "h-neighbour"),
            ("other tenant", "h-foreign"),
        ):
            account = f"market/accounts/{name}"
            mine = whose == "own" or (role == "admin" and whose == "same tenant")
            for rpc, (permission, method, build) in calls.items():
                role_ok = "*" in granted or permission in granted
                status = _rest_request(
                    server, method, build(account), secret, {"x-idf-account": account}
                )
                expected = 403 if not role_ok else (4031 if not mine else None)
                got = status if status in (401, 403, 4031) else None
                if got != expected:
                    wrong.append(f"{rpc} by {role} for the {whose} account: HTTP {status}")
    assert wrong == [], "\n".join(wrong)
