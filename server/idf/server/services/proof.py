"""ProofService: decode, call the proof rules of `idf.engine.proofs` (inputs, metrics, verdict,
record, reward), append to the `TransparencyLog` (signed records, RFC 6962 tree), encode."""

from __future__ import annotations

import datetime
import functools
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from idf.client.proofs import array_digest
from idf.engine.cost import Cost
from idf.engine.errors import ParameterError
from idf.engine.market.operations import is_user_account
from idf.engine.proofs import policies, records
from idf.server import auth, metering, paging
from idf.server.admission import Admission
from idf.server.config import Settings
from idf.server.errors import ApiError, invalid_argument
from idf.server.rpc import run_blocking, unary
from idf.server.transparency import TransparencyLog
from idf.server.validation import decode_field
from idf.store.ledger import IdempotencyKeyReused, Ledger, fingerprint
from idf.store.proof_log import Leaf
from idf.v1 import proof_pb2, proof_pb2_grpc

log = logging.getLogger("idf.proof")
T = TypeVar("T")
_VERDICTS = {"PASS": proof_pb2.VERDICT_PASS, "FAIL": proof_pb2.VERDICT_FAIL}
# CreateProof's answer says in trailing metadata what the proof earned and why (the contract's
# response has no field for it yet): PFT base units, and a reason (REWARDED, REWARD_CAPPED, or why
# nothing was paid: METERING_OFF, NO_ACCOUNT, NO_PREDICTION, SELF_COMPARISON, NOT_A_BILLED_OUTPUT,
# NOT_CALLERS_OUTPUT, REFERENCE_IS_SERVICE_OUTPUT, ALREADY_REWARDED, CALL_CAP_REACHED, PROOF_FAILED).
REWARD_HEADER, REWARD_REASON_HEADER = "x-idf-reward-pft", "x-idf-reward-reason"


def encode(record: records.Record, leaf: Leaf) -> proof_pb2.Proof:
    create_time = timestamp_pb2.Timestamp()
    create_time.FromJsonString(record.create_time)
    return proof_pb2.Proof(
        name=f"proofs/{leaf.proof_id}",
        record=leaf.record,
        signature=leaf.signature,
        verdict=_VERDICTS[record.verdict],
        policy=record.policy,
        metrics=[proof_pb2.Metric(name=k, value=v) for k, v in sorted(record.metrics.items())],
        checks=[
            proof_pb2.Check(
                metric=c.metric,
                comparison=c.comparison,
                threshold=c.threshold,
                value=c.value,
                verdict=_VERDICTS["PASS" if c.passed else "FAIL"],
            )
            for c in record.checks
        ],
        input_digests=record.inputs,
        producer=proof_pb2.Producer(name=record.producer_name, version=record.producer_version),
        create_time=create_time,
    )


class ProofServicer(proof_pb2_grpc.ProofServiceServicer):
    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        log: TransparencyLog,
        ledger: Ledger,
        light: Admission | None = None,
    ) -> None:
        self.light = light  # proof metrics: bounded light work, its own pool (None: the store pool, unbounded)
        self.ledger = ledger
        self.settings = settings
        self.executor = executor
        self.log = log

    def _proof(self, leaf: Leaf, size: int | None) -> proof_pb2.Proof:
        try:
            proof = encode(records.parse(leaf.record), leaf)
        except (ValueError, KeyError, TypeError):
            # The stored record no longer parses: serve it as stored, so verifiers see exactly
            # what the store holds (its signature will not verify), and say so in the logs.
            log.error(
                "stored proof record does not parse; the log may have been tampered with",
                extra={"proof_id": leaf.proof_id, "index": leaf.index},
            )
            proof = proof_pb2.Proof(
                name=f"proofs/{leaf.proof_id}", record=leaf.record, signature=leaf.signature
            )
        if size is not None:
            hashes = self.log.inclusion_proof(leaf.index, size)
            proof.inclusion_proof.CopyFrom(
                proof_pb2.InclusionProof(leaf_index=leaf.index, tree_size=size, hashes=hashes)
            )
            proof.checkpoint.CopyFrom(self.log.checkpoint(size))
        return proof

    # -- RPCs ------------------------------------------------------------------------------
    async def _metrics(
        self,
        context: grpc.aio.ServicerContext,
        cost: Cost,
        field: str,
        fn: Callable[..., T],
        *args: Any,
    ) -> T:
        """Metrics are engine work: cost-checked and run on the light pool (bounded threads and
        queue), never on the store pool the cheap calls share."""
        if self.light is None:
            return await run_blocking(self.executor, fn, *args)
        return await self.light.call(
            context,
            (cost.site_updates, cost.state_bytes),
            field,
            lambda *a, should_stop: fn(*a),
            *args,
        )

    @unary
    async def CreateProof(
        self, request: proof_pb2.CreateProofRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.CreateProofResponse:
        limit = self.settings.max_field_elements
        header = metering.caller_account(
            context
        )  # first: a caller acting for another account does no work
        account = header if is_user_account(header) else None
        try:
            policy = policies.get(request.policy)
            if policy.kind == "compare":
                arrays: dict[str, Any] = {
                    role: decode_field(getattr(request, role), role, max_elements=limit)
                    for role in ("prediction", "reference")
                    if request.HasField(role)
                }
            else:
                records.check_frames(policy, len(request.sequence))  # before decoding any
                arrays = {
                    "sequence": [
                        decode_field(f, f"sequence[{i}]", max_elements=limit)
                        for i, f in enumerate(request.sequence)
                    ]
                }
            inputs = records.ProofInputs.of(policy, **arrays)
            values = await self._metrics(context, inputs.estimate(), inputs.field, inputs.measure)
            proof_id = uuid.uuid4().hex
            now = (
                datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="microseconds")
                .replace("+00:00", "Z")
            )
            record = records.record(
                inputs,
                values,
                proof_id=proof_id,
                log=self.settings.log_origin,
                create_time=now,
                digests={role: array_digest(a) for role, a in inputs.arrays.items()},
                producer_name=request.producer.name,
                producer_version=request.producer.version,
            )
            # A request_id is scoped by the caller's account; its fingerprint covers every input of the
            # record (policy, input digests, producer), so a retry with other inputs is refused.
            key_print = fingerprint(
                {"policy": policy.name, "inputs": record["inputs"], "producer": record["producer"]}
            )
            appended = await run_blocking(
                self.executor,
                functools.partial(
                    self.log.append,
                    record,
                    request_id=request.request_id or None,
                    account=account or "",
                    fingerprint=key_print,
                    tenant=auth.current().tenant,
                ),
            )
        except ParameterError as e:
            raise invalid_argument(e.parameter, e.reason) from None
        except IdempotencyKeyReused as e:
            raise invalid_argument("request_id", str(e), reason="IDEMPOTENCY_KEY_REUSED") from None
        leaf = appended.leaf
        stored = records.parse(leaf.record)  # a retried request_id returns the first record
        paid = metering.Reward(0, "RETRY")
        if (
            appended.created
        ):  # a retry never pays: the reward was decided when the proof was appended
            if stored.verdict == "PASS":
                paid = await run_blocking(
                    self.executor,
                    functools.partial(
                        metering.reward,
                        self.ledger,
                        enabled=self.settings.metering,
                        pft_per_ceu=self.settings.reward_pft_per_ceu,
                        account=account,
                        proof_id=leaf.proof_id,
                        earned=policy.reward(stored.metrics),
                        prediction=stored.inputs.get("prediction"),
                        reference=stored.inputs.get("reference"),
                    ),
                )
            else:
                paid = metering.Reward(0, "PROOF_FAILED")
            log.info(
                "proof reward",
                extra={
                    "proof_id": leaf.proof_id,
                    "account": account,
                    "reward_pft": paid.amount,
                    "reward_reason": paid.reason,
                },
            )
            context.set_trailing_metadata(
                ((REWARD_HEADER, str(paid.amount)), (REWARD_REASON_HEADER, paid.reason))
            )
        return proof_pb2.CreateProofResponse(
            proof=self._proof(leaf, appended.size),
            reward_pft=paid.amount,
            reward_reason=paid.reason,
        )

    @unary
    async def GetProof(
        self, request: proof_pb2.GetProofRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.GetProofResponse:
        prefix, _, proof_id = request.name.partition("/")
        if prefix != "proofs" or not proof_id:
            raise invalid_argument("name", "must look like proofs/{proof_id}")
        tenant = auth.current().tenant  # another tenant's proof does not exist for this caller
        leaf = await run_blocking(self.executor, self.log.store.get, proof_id, tenant)
        if leaf is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND,
                f"{request.name} does not exist",
                reason="PROOF_NOT_FOUND",
            )
        size = await run_blocking(self.executor, self.log.sync)
        return proof_pb2.GetProofResponse(proof=self._proof(leaf, size))

    @unary
    async def ListProofs(
        self, request: proof_pb2.ListProofsRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.ListProofsResponse:
        size = paging.page_size(request.page_size)
        before = paging.decode_int(request.page_token, "before") if request.page_token else None
        verdict = {proof_pb2.VERDICT_PASS: "PASS", proof_pb2.VERDICT_FAIL: "FAIL"}.get(
            request.verdict, ""
        )
        leaves = await run_blocking(
            self.executor,
            self.log.store.list,
            before=before,
            limit=size + 1,
            policy=request.policy,
            verdict=verdict,
            producer=request.producer,
            tenant=auth.current().tenant,
        )
        # A page also ends early when its answer would pass half the message limit, so records
        # written before strings were bounded (a 2 MB producer name) cannot make the list fail forever.
        budget, used, proofs = self.settings.max_message_bytes // 2, 0, []
        for leaf in leaves[:size]:
            proof = self._proof(leaf, None)
            used += proof.ByteSize() + 16
            if proofs and used > budget:
                break
            proofs.append(proof)
        more = len(proofs) < len(leaves)
        token = paging.encode("before", leaves[len(proofs) - 1].index) if more and proofs else ""
        return proof_pb2.ListProofsResponse(proofs=proofs, next_page_token=token)

    @unary
    async def ListPolicies(
        self, request: proof_pb2.ListPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.ListPoliciesResponse:
        return proof_pb2.ListPoliciesResponse(
            policies=[
                proof_pb2.Policy(
                    name=p.name,
                    description=p.description,
                    checks=[
                        proof_pb2.Check(
                            metric=c.metric, comparison=c.comparison, threshold=c.threshold
                        )
                        for c in p.checks
                    ],
                )
                for p in sorted(policies.POLICIES.values(), key=lambda p: p.name)
            ]
        )

    @unary
    async def GetCheckpoint(
        self, request: proof_pb2.GetCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.GetCheckpointResponse:
        size = await run_blocking(self.executor, self.log.sync)
        return proof_pb2.GetCheckpointResponse(checkpoint=self.log.checkpoint(size))

    @unary
    async def GetConsistencyProof(
        self, request: proof_pb2.GetConsistencyProofRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.GetConsistencyProofResponse:
        size = await run_blocking(self.executor, self.log.sync)
        first, second = request.first_tree_size, request.second_tree_size
        if not 1 <= first <= size:
            raise invalid_argument("first_tree_size", f"must be in 1..{size} (the current size)")
        if not first <= second <= size:
            raise invalid_argument("second_tree_size", f"must be in {first}..{size}")
        return proof_pb2.GetConsistencyProofResponse(
            hashes=self.log.consistency_proof(first, second)
        )

    @unary
    async def GetPublicKey(
        self, request: proof_pb2.GetPublicKeyRequest, context: grpc.aio.ServicerContext
    ) -> proof_pb2.GetPublicKeyResponse:
        return proof_pb2.GetPublicKeyResponse(
            public_key=self.log.public_key, key_id=self.log.key_id
        )
