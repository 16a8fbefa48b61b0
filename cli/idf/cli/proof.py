"""`idf validate` and `idf proof ...`: create proofs, fetch keys and heads, verify offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from google.protobuf import json_format

from idf.cli.output import INPUT_ERROR, console, emit, fail
from idf.cli.shared import JsonOpt, ServerOpt, TimeoutOpt, connected
from idf.client.formats import FormatError, load_energy_map, load_reference_h5
from idf.client.proofs import (
    key_id,
    load_public_key,
    proof_from_json,
    proof_to_json,
    public_key_pem,
    verify_proof,
)
from idf.v1 import proof_pb2

proof_app = typer.Typer(
    help="Proof records: keys, log heads, offline verification.", no_args_is_help=True
)


def _load(path: Path, dataset: str, json_out: bool):  # noqa: ANN202
    try:
        if path.suffix in (".h5", ".hdf5"):
            return load_reference_h5(path, dataset)[0]
        return load_energy_map(path)[0]
    except FormatError as e:
        fail(str(e), INPUT_ERROR, as_json=json_out)


def validate(
    prediction: Annotated[Path, typer.Option(help="The field to validate (.npy, .npz or .h5).")],
    ground_truth: Annotated[
        Path,
        typer.Option("--ground-truth", help="Reference of the same shape (.npy, .npz or .h5)."),
    ],
    policy: Annotated[
        str, typer.Option(help="Policy name (idf proof policies).")
    ] = "forecast-default",
    dataset: Annotated[str, typer.Option(help="HDF5 dataset name.")] = "field",
    producer: Annotated[
        str, typer.Option(help="Who produced the prediction: name[@version].")
    ] = "",
    out: Annotated[Optional[Path], typer.Option(help="Write the proof (JSON) here.")] = None,
    request_id: Annotated[
        str, typer.Option(help="Idempotency key: a retry returns the first proof.")
    ] = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 120.0,
) -> None:
    """Validate a prediction against ground truth: metrics, verdict, and a signed proof."""
    pred = _load(prediction, dataset, json_out)
    ref = _load(ground_truth, dataset, json_out)
    if pred.dtype != ref.dtype:
        ref = ref.astype(pred.dtype)  # files differ in precision more often than in meaning
    name, _, version = producer.partition("@")
    with connected(server, timeout, json_out) as c:
        proof = c.create_proof(
            prediction=pred,
            reference=ref,
            policy=policy,
            producer=(name, version),
            request_id=request_id,
        )
    if out:
        out.write_text(proof_to_json(proof))
    verdict = proof.verdict
    if json_out:
        print(
            json.dumps(
                {
                    "proof": proof.name,
                    "verdict": verdict,
                    "policy": proof.policy,
                    "metrics": proof.metrics,
                    "out": str(out) if out else None,
                }
            )
        )
    else:
        from rich.table import Table

        table = Table(title=f"{proof.name} — {verdict} under {proof.policy}")
        for column in ("metric", "value", "check"):
            table.add_column(column)
        checks = {c.metric: c for c in proof.checks}
        for metric, value in sorted(proof.metrics.items()):
            c = checks.get(metric)
            mark = (
                ""
                if c is None
                else f"{c.comparison} {c.threshold:g}: "
                + ("[green]pass[/]" if c.verdict == "PASS" else "[red]FAIL[/]")
            )
            table.add_row(metric, f"{value:.6g}", mark)
        console.print(table)
        if out:
            console.print(f"proof written to {out}")
    if proof.verdict != "PASS":
        raise typer.Exit(2)


@proof_app.command("key")
def key(
    out: Annotated[Path, typer.Option(help="Where to write the PEM public key.")],
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Save the log's public key (check its fingerprint out of band once)."""
    with connected(server, timeout, json_out) as c:
        raw = c.public_key()
    out.write_bytes(public_key_pem(raw))
    emit({"out": str(out), "key_id": key_id(raw)}, json_out)


@proof_app.command("head")
def head(
    out: Annotated[Path, typer.Option(help="Where to write the head (JSON).")],
    since: Annotated[
        int, typer.Option(help="Also fetch a consistency proof from this tree size.")
    ] = 0,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Save the current signed log head, with a consistency proof from --since."""
    with connected(server, timeout, json_out) as c:
        cp = c.checkpoint()
        hashes = c.consistency_proof(since, cp.tree_size) if since else []
    doc = {
        "checkpoint": json_format.MessageToDict(cp, preserving_proto_field_name=True),
        "consistency": {"first_tree_size": since, "hashes": [h.hex() for h in hashes]},
    }
    out.write_text(json.dumps(doc, indent=2))
    emit({"out": str(out), "tree_size": cp.tree_size}, json_out)


@proof_app.command("verify")
def verify(
    proof_file: Annotated[Path, typer.Argument(help="A proof written by `idf validate --out`.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The log's public key (PEM or hex).")
    ],
    head_file: Annotated[
        Optional[Path], typer.Option("--head", help="A newer head from `idf proof head --since N`.")
    ] = None,
    prediction: Annotated[
        Optional[Path], typer.Option(help="Check this file is the validated prediction.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a proof offline: signatures, inclusion, consistency with a newer head — no server."""
    try:
        proof = proof_from_json(proof_file.read_text())
        key_ = load_public_key(public_key)
        newer, consistency = None, []
        if head_file:
            doc = json.loads(head_file.read_text())
            newer = json_format.ParseDict(doc["checkpoint"], proof_pb2.Checkpoint())
            if doc["consistency"]["first_tree_size"] != proof.checkpoint.tree_size:
                fail(
                    f"--head's consistency proof starts at size {doc['consistency']['first_tree_size']}, "
                    f"the proof's checkpoint has size {proof.checkpoint.tree_size}",
                    as_json=json_out,
                )
            consistency = [bytes.fromhex(h) for h in doc["consistency"]["hashes"]]
        arrays = {"prediction": load_energy_map(prediction)[0]} if prediction else None
    except (OSError, ValueError, KeyError, FormatError) as e:
        fail(f"cannot read the inputs: {e}", as_json=json_out)
    result = verify_proof(
        proof, key_, newer_checkpoint=newer, consistency=consistency, arrays=arrays
    )
    if json_out:
        print(json.dumps({"ok": result.ok, "checks": result.checks, "failures": result.failures}))
    else:
        for name, passed in result.checks.items():
            console.print(f"{'[green]ok[/]  ' if passed else '[red]BAD[/] '} {name}")
        console.print(
            "[bold green]VERIFIED[/]"
            if result.ok
            else f"[bold red]NOT VERIFIED[/]: {'; '.join(result.failures)}"
        )
    if not result.ok:
        raise typer.Exit(5)
