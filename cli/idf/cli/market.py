"""`idf market ...`: the CEU/PFT pool, quotes, swaps, balances, history, and the operator audit."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from google.protobuf import json_format

from idf.cli.output import emit, fail
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client import TOKENS, account_name
from idf.v1 import market_pb2 as m

market_app = typer.Typer(
    help="The CEU/PFT market: pool, quotes, swaps, balances, history.", no_args_is_help=True
)
POOL = "market/pools/ceu-pft"
PoolOpt = Annotated[str, typer.Option(help="Pool resource name.")]
AUDIT_FAILED = 5  # `idf market audit`: the server answered, and a ledger invariant fails


def _account(name: str) -> str:
    return account_name(name)


def _token(name: str, json_out: bool) -> str:
    if name.upper() not in TOKENS:
        fail(f"token must be CEU or PFT, got {name!r}", as_json=json_out)
    return name.upper()


def _show(message, json_out: bool, title: str) -> None:  # noqa: ANN001
    emit(
        json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
        json_out,
        title,
    )


@market_app.command()
def pool(
    name: PoolOpt = POOL,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Reserves, LP shares and fee of a pool."""
    with connected(server, timeout, json_out) as c:
        _show(c.get_pool(name).raw, json_out, name)


@market_app.command()
def quote(
    token_in: Annotated[str, typer.Argument(help="CEU or PFT, the token paid in.")],
    amount_in: Annotated[
        Optional[int], typer.Option(help="Exact amount paid in (base units).")
    ] = None,
    amount_out: Annotated[
        Optional[int], typer.Option(help="Exact amount received (base units).")
    ] = None,
    pool_name: PoolOpt = POOL,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Price a swap without executing it."""
    if (amount_in is None) == (amount_out is None):
        fail("give exactly one of --amount-in and --amount-out", as_json=json_out)
    with connected(server, timeout, json_out) as c:
        _show(
            c.quote(
                _token(token_in, json_out),
                amount_in=amount_in,
                amount_out=amount_out,
                pool=pool_name,
            ).raw,
            json_out,
            "quote",
        )


@market_app.command()
def swap(
    account: Annotated[str, typer.Argument(help="Account id or market/accounts/{id}.")],
    token_in: Annotated[str, typer.Argument(help="CEU or PFT, the token paid in.")],
    amount_in: Annotated[Optional[int], typer.Option(help="Exact amount paid in.")] = None,
    amount_out: Annotated[Optional[int], typer.Option(help="Exact amount received.")] = None,
    min_out: Annotated[int, typer.Option(help="Slippage guard for --amount-in.")] = 0,
    max_in: Annotated[
        int, typer.Option(help="Slippage guard for --amount-out (required with it).")
    ] = 0,
    deadline_s: Annotated[
        float, typer.Option("--deadline", help="Seconds from now after which the swap is refused.")
    ] = 60.0,
    request_id: Annotated[
        str, typer.Option(help="Idempotency key [default: a new random one].")
    ] = "",
    pool_name: PoolOpt = POOL,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Swap CEU for PFT or back, exact in or exact out."""
    if (amount_in is None) == (amount_out is None):
        fail("give exactly one of --amount-in and --amount-out", as_json=json_out)
    with connected(server, timeout, json_out) as c:
        done = c.swap(
            _account(account),
            _token(token_in, json_out),
            amount_in=amount_in,
            amount_out=amount_out,
            min_amount_out=min_out,
            max_amount_in=max_in,
            deadline_s=deadline_s,
            request_id=request_id,
            pool=pool_name,
        )
    _show(done.raw, json_out, "swap")


@market_app.command()
def balance(
    account: Annotated[str, typer.Argument(help="Account id or market/accounts/{id}.")],
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """An account's balances."""
    with connected(server, timeout, json_out) as c:
        balances = c.get_balance(_account(account))
    emit(balances, json_out, _account(account))


@market_app.command()
def history(
    account: Annotated[str, typer.Argument(help="Account id or market/accounts/{id}.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Transactions to show.")] = 20,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """An account's journal entries, newest first."""
    with connected(server, timeout, json_out) as c:
        response = c.list_transactions(_account(account), page_size=limit).raw
    if json_out:
        print(json_format.MessageToJson(response, preserving_proto_field_name=True, indent=None))
        return
    from rich.table import Table

    from idf.cli.output import console

    table = Table(title=f"{_account(account)} — newest first")
    for column in ("time", "kind", "postings"):
        table.add_column(column)
    for t in response.transactions:
        legs = "; ".join(
            f"{p.account.removeprefix('market/')} {p.amount:+d} {m.Token.Name(p.token).removeprefix('TOKEN_')}"
            for p in t.postings
        )
        table.add_row(t.create_time.ToJsonString(), t.kind, legs)
    console.print(table)


@market_app.command()
def audit(
    admin_token: Annotated[
        str,
        typer.Option(
            envvar="IDF_ADMIN_TOKEN", help="The server's admin token [env: IDF_ADMIN_TOKEN]."
        ),
    ] = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Operator audit: system balances, supply, open escrow reservations and every ledger
    invariant. Exits 5 when an invariant fails."""
    if not admin_token:
        fail(
            "the audit is for administrators: give --admin-token or set IDF_ADMIN_TOKEN",
            as_json=json_out,
        )
    with connected(server, timeout, json_out) as c:
        response = c.get_ledger_audit(admin_token).raw
    if json_out:
        print(
            json_format.MessageToJson(
                response,
                preserving_proto_field_name=True,
                indent=None,
                always_print_fields_with_no_presence=True,
            )
        )
    else:
        from rich.table import Table

        from idf.cli.output import console

        def token(code: int) -> str:
            return m.Token.Name(code).removeprefix("TOKEN_")

        balances = Table(title="system balances")
        for column in ("account", "token", "amount"):
            balances.add_column(column, justify="right" if column == "amount" else "left")
        for b in response.system_balances:
            balances.add_row(b.account, token(b.token), f"{b.amount:,}")
        console.print(balances)
        console.print(
            "supply: " + ", ".join(f"{s.amount:,} {token(s.token)}" for s in response.supply)
        )
        console.print(
            f"open reservations: {response.open_reservation_count} holding {response.open_reservation_total:,} CEU; "
            f"journal entries: {response.journal_entries:,}"
        )
        checks = Table(title="invariants")
        for column in ("invariant", "holds", "detail"):
            checks.add_column(column)
        for inv in response.invariants:
            checks.add_row(
                inv.name,
                "[green]yes[/]" if inv.passed else "[bold red]NO[/]",
                inv.detail or inv.description,
            )
        console.print(checks)
    if not response.passed:
        failed = ", ".join(i.name for i in response.invariants if not i.passed)
        if not json_out:
            from idf.cli.output import err_console

            err_console.print(f"[bold red]ledger invariants fail:[/] {failed}")
        raise typer.Exit(AUDIT_FAILED)
