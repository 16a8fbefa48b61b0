"""`idf keys create|list|revoke`: API keys of the caller's tenant (administrators)."""

from __future__ import annotations

from typing import Annotated

import typer

from idf.cli.output import emit
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client.results import ApiKey

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


def _row(k: ApiKey) -> dict[str, object]:
    return {
        "name": k.name,
        "prefix": k.prefix,
        "principal": k.principal,
        "tenant": k.tenant,
        "roles": ",".join(k.roles),
        "accounts": ",".join(k.accounts),
        "created": k.create_time.isoformat() if k.create_time else None,
        "expires": k.expire_time.isoformat() if k.expire_time else None,
        "revoked": k.revoke_time.isoformat() if k.revoke_time else None,
        "description": k.description,
    }


@keys_app.command()
def create(
    principal: Annotated[str, typer.Argument(help="Who calls with the key (e.g. ci-bot).")],
    role: Annotated[
        list[str], typer.Option("--role", help="A role of the key (repeat): viewer, operator, ...")
    ],
    account: Annotated[
        list[str],
        typer.Option("--account", help="An account it acts and pays for (repeat; first: default)."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    ttl: Annotated[int, typer.Option(help="Seconds until it expires (0: never).", min=0)] = 0,
    description: Annotated[str, typer.Option(help="A note for whoever lists the keys.")] = "",
    tenant: Annotated[
        str, typer.Option(help="Another tenant (the deployment's operator only; creates it).")
    ] = "",
    server: ServerOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_out: JsonOpt = False,
) -> None:
    """Create a key; its secret is printed once — store it now."""
    with connected(server, timeout, json_out) as c:
        created = c.create_api_key(
            principal,
            role,
            ttl_seconds=ttl,
            description=description,
            accounts=account,
            tenant=tenant,
        )
    emit(
        {**_row(created.api_key), "secret": created.secret}, json_out, "API key (secret shown once)"
    )


@keys_app.command("list")
def list_keys(
    server: ServerOpt = None, timeout: TimeoutOpt = 30.0, json_out: JsonOpt = False
) -> None:
    """The tenant's keys, newest first (never their secrets)."""
    rows, token = [], ""
    with connected(server, timeout, json_out) as c:
        while True:
            page = c.list_api_keys(page_size=1000, page_token=token)
            rows += [_row(k) for k in page.api_keys]
            token = page.next_page_token
            if not token:
                break
    emit({"keys": rows}, json_out, "API keys")


@keys_app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="keys/{key_id}, or the key id.")],
    server: ServerOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a key: calls with it are refused from then on."""
    with connected(server, timeout, json_out) as c:
        key = c.revoke_api_key(name if name.startswith("keys/") else f"keys/{name}")
    emit(_row(key), json_out, "revoked")
