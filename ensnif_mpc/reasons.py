"""The one registry of reason codes: every machine-readable reason Ensnif sends or records.

A reason code is a stable snake_case name. It travels two ways:

- with a **refusal or error** (an :class:`ensnif_mpc.errors.EnsnifError`): as gRPC
  trailing metadata ``ensnif-reason`` next to the status code the error's class maps to
  (that mapping lives in ``ensnif_mpc/errors.py``, nowhere else); a node's refusal of a
  proposal becomes the ``reason_code`` of a ``rejected`` job;
- as the ``reason_code`` of a **job that ended** without success (``failed``,
  ``rejected``, ``cancelled`` at the coordinator; ``aborted`` too at a node).

Every reason used anywhere is listed here with its gRPC status code (for refusals and
errors) or the states a job ends in, what it means and what to do about it. Constructing
an error with a reason not listed here raises ``ValueError``;
``tests/unit/ensnif_mpc/test_reasons.py`` scans the source for reason literals at raise
sites and at the calls that end jobs, and checks that ``docs/reasons.md`` is the table
:func:`render_markdown` writes. After adding a reason, regenerate it::

    python scripts/gen_reasons_doc.py        # or: python -m ensnif_mpc.reasons > docs/reasons.md

The module is data more than code: it is long because the table is.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc

_S = grpc.StatusCode


@dataclass(frozen=True)
class Reason:
    name: str
    meaning: str
    action: str
    grpc_code: grpc.StatusCode | None = None  # the status of a refusal or error
    ends: tuple[str, ...] = ()  # the job states this reason ends a job in ("failed", …)
    group: str = ""


class UnknownReason(ValueError):
    """A reason code that is not in the registry (a programming error, not a refusal)."""


# Groups, in the order the docs show them.
REQUESTS = "Requests and the catalog"
IDENTITY = "Identity and signatures"
POLICY = "Data owners' policies and privacy"
CAPACITY = "Budget and capacity"
DATA = "Data owners' sources"
APPROVAL = "Approval and the job's start"
RUNNING = "A running job"
HE = "Homomorphic encryption (scoring and outsourcing)"
GENERIC = "Generic (the class defaults)"

_REJECTED = ("rejected",)
_FAILED = ("failed",)

_ALL: tuple[Reason, ...] = (
    # -- requests and the catalog ------------------------------------------------------
    Reason(
        "invalid_argument",
        "A request field is invalid; the message names the field.",
        "Fix the named field and send the request again.",
        _S.INVALID_ARGUMENT,
        group=REQUESTS,
    ),
    Reason(
        "invalid_job_spec",
        "The job file or job spec is not a valid job (syntax, a missing or unknown field).",
        "Fix the job file as the message says; `ensnif protocols describe NAME` lists "
        "what a protocol takes.",
        _S.INVALID_ARGUMENT,
        group=REQUESTS,
    ),
    Reason(
        "sessions_not_partitionable",
        "The job asks for more than one parallel MPC session (`params.sessions`) for a "
        "protocol or route whose work does not split by key (only intersection_size and "
        "intersection_sum on the tagged-helper route do).",
        "Leave `params.sessions` out (one session), or use a protocol that lists parallel "
        "sessions in `ensnif protocols describe`.",
        _S.INVALID_ARGUMENT,
        group=REQUESTS,
    ),
    Reason(
        "invalid_config",
        "A configuration file (coordinator, node, profile) does not load or does not validate.",
        "Fix the named setting; a node keeps its previous policy when a reload is refused.",
        _S.INVALID_ARGUMENT,
        group=REQUESTS,
    ),
    Reason(
        "malformed_request",
        "The request message itself is malformed: an unknown field, a non-finite number, "
        "an out-of-range integer or an unknown enum value.",
        "Use a client of the same version as the server; do not hand-craft messages.",
        _S.INVALID_ARGUMENT,
        group=REQUESTS,
    ),
    Reason(
        "not_found",
        "The named object does not exist.",
        "Check the name or id; list what exists with the matching `ensnif … list` command.",
        _S.NOT_FOUND,
        group=REQUESTS,
    ),
    Reason(
        "unknown_protocol",
        "No protocol of that name is registered.",
        "Pick one from `ensnif protocols list`.",
        _S.NOT_FOUND,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "unknown_party",
        "The job names a party the coordinator does not know.",
        "Check the party names with `ensnif parties`; the party's node must be running "
        "and registered.",
        _S.NOT_FOUND,
        group=REQUESTS,
    ),
    Reason(
        "unknown_dataset",
        "A dataset named by the job is not published (at the coordinator) or not "
        "configured (at the node).",
        "Check `ensnif datasets`; the data owner must register the dataset in its node's "
        "configuration.",
        _S.NOT_FOUND,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "unknown_column",
        "A column named by the job is not in the dataset's schema.",
        "Check the schema with `ensnif datasets`.",
        _S.NOT_FOUND,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "unknown_job",
        "No job with that id exists here.",
        "Check the id with `ensnif job list`.",
        _S.NOT_FOUND,
        group=REQUESTS,
    ),
    Reason(
        "column_type_mismatch",
        "A column has a type the protocol's role does not accept.",
        "Choose a column of the type `ensnif protocols describe NAME` lists for the role.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "role_column_count",
        "A role got the wrong number of columns: a list for a role that takes one column, "
        "or too few or too many columns for a role that takes several (e.g. features).",
        "Give the role as many columns as `ensnif protocols describe NAME` lists for it.",
        _S.INVALID_ARGUMENT,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "program_invalid",
        "A member program or its manifest is not valid: the manifest does not match the "
        "code (an output, parameter or role the code uses and the manifest does not "
        "declare, or the reverse), or the code reaches past the program API.",
        "Run `ensnif program check DIR` and fix what it names (docs/programs.md).",
        _S.INVALID_ARGUMENT,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "program_hash_mismatch",
        "A member program's files do not hash to the SHA-256 the job (or the job file's "
        "pin) claims: the code is not the code that was signed or reviewed.",
        "Submit the program again from its reviewed files; `ensnif program check DIR` "
        "prints its hash.",
        _S.INVALID_ARGUMENT,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "too_few_rows",
        "The owners' datasets have, together, no more rows than the model has coefficients "
        "(the catalog's row counts), so its fit is not determined.",
        "Use fewer features or add data owners.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "wrong_row_count",
        "An owner's dataset does not have the number of rows the protocol takes (the "
        "catalog's row counts), e.g. aes128's 16 key bytes and 16 plaintext bytes.",
        "Register a dataset with exactly the rows the protocol's catalog entry names.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "model_feature_mismatch",
        "A predict or model_accuracy job lists another number of feature columns than the "
        "model artifact has weights (compared at every node before anything runs).",
        "List the model's features in the order it was trained on (`ensnif model show`).",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "model_vertical",
        "A predict or model_accuracy job lists a model trained across a private join "
        "(join_regression, join_logistic): its features are split between two owners, "
        "and these jobs score one owner's rows (scoring across the join is not built).",
        "Train the model on one owner's rows (linear_regression, logistic_regression) to "
        "score them, or release the vertical model and score in the clear.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "model_mismatch",
        "The artifact a predict or model_accuracy job lists is not a trained model (a "
        'linear or logistic regression run with keep = "artifact").',
        "List a model artifact (`ensnif model list`).",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=REQUESTS,
    ),
    Reason(
        "key_type_mismatch",
        "The join keys of the owners' datasets have different types.",
        "Join on key columns of one type at every owner.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "not_enough_parties",
        "The job has too few parties for an honest majority (or for the protocol).",
        "Add a helper (a compute-only party) to the job: two data owners need a third party.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "too_many_parties",
        "The protocol takes fewer data owners than the job names.",
        "Name at most as many owners as `ensnif protocols describe NAME` allows.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "invalid_transition",
        "The job (or node job) is not in a state that allows this change.",
        "Check the job's state with `ensnif job status`; a final job does not change again.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "result_not_ready",
        "The job has no result to fetch (yet, or it did not succeed).",
        "Wait for the job to succeed (`ensnif job watch`), then fetch the result.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "not_awaiting_approval",
        "The job is not waiting for this node's administrator.",
        "See the node's pending jobs with `ensnif job pending`.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "already_decided",
        "The administrator's decision on this job was already recorded.",
        "Nothing to do; a decision is made once.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    Reason(
        "audit_broken",
        "An audit log's hash chain (or its signed anchor) does not verify: a record was "
        "altered, removed or reordered.",
        "Treat the log as tampered with; compare with a backup and investigate the host.",
        _S.FAILED_PRECONDITION,
        group=REQUESTS,
    ),
    # -- identity and signatures -------------------------------------------------------
    Reason(
        "permission_denied",
        "The caller's identity (from its certificate) may not do this.",
        "Call with the identity the operation needs (analyst, node, coordinator).",
        _S.PERMISSION_DENIED,
        group=IDENTITY,
    ),
    Reason(
        "crypto_verification_failed",
        "A certificate, signature or sealed blob failed verification.",
        "Check that both sides use certificates of the same consortium CA and that nothing "
        "was altered in transit or at rest.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED + _FAILED,
        group=IDENTITY,
    ),
    Reason(
        "certificate_revoked",
        "The peer's certificate is on the consortium CA's revocation list.",
        "Issue the member a new certificate (`ensnif pki issue`) if it is still trusted.",
        _S.PERMISSION_DENIED,
        group=IDENTITY,
    ),
    Reason(
        "unsigned_job",
        "The job carries no submitter signature (or no nonce).",
        "Submit through `ensnif job submit` or the SDK, which sign the job.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=IDENTITY,
    ),
    Reason(
        "bad_job_signature",
        "The job's signature does not match its content: it was altered after signing, "
        "or signed for another protocol version.",
        "Submit the job again from the analyst's own client; investigate if it recurs.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=IDENTITY,
    ),
    Reason(
        "untrusted_analyst",
        "The analyst certificate the results would be sealed to is not a valid analyst "
        "certificate of the consortium.",
        "Submit with an analyst certificate issued by the consortium CA.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=IDENTITY,
    ),
    Reason(
        "replayed_job",
        "This signed job (its nonce) already ran at the node; a signed job runs once.",
        "Submit the job again: the client signs it with a fresh nonce.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=IDENTITY,
    ),
    Reason(
        "approval_mismatch",
        "The proposal differs from the job the node's administrator approved.",
        "Submit the job again and have it approved as proposed.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=IDENTITY,
    ),
    # -- policies and privacy ----------------------------------------------------------
    Reason(
        "artifact_not_found",
        "A node holds no share of an artifact the job lists (never made, deleted, or made "
        "by a session of other parties), so the job cannot read it.",
        "Check `ensnif artifacts list`; run the job on the parties that made the artifact "
        "(in any order), or make it again.",
        _S.NOT_FOUND,
        ends=_REJECTED + _FAILED,
        group=POLICY,
    ),
    Reason(
        "artifact_forbidden",
        "A data owner whose data went into an artifact does not let this analyst use or "
        "open it (its `[artifacts] analysts` policy).",
        "Ask that data owner to list you in its node's `[artifacts] analysts`.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED + _FAILED,
        group=POLICY,
    ),
    Reason(
        "policy_violation",
        "A data owner's policy refuses the job (the message names the rule).",
        "Change the job to fit the policy, or ask the data owner to change it.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED + _FAILED,
        group=POLICY,
    ),
    Reason(
        "protocol_not_allowed",
        "The dataset's policy does not allow this protocol (`allowed_protocols`).",
        "Use an allowed protocol, or ask the data owner to allow this one.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "column_not_allowed",
        "The job reads a column outside the dataset's policy (`columns`).",
        "Read only the columns the policy lists.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "recipient_not_allowed",
        "The results would go to an analyst the dataset's policy does not list (`recipients`).",
        "Ask the data owner to add the analyst, or have a listed analyst submit.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "cohort_too_small",
        "A released aggregate would draw on fewer of the dataset's rows than its policy's "
        "`min_cohort`.",
        "Widen the selection or the groups so every aggregate covers enough rows.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "group_cap_exceeded",
        "The job lists more groups than a dataset's policy allows per job (`max_groups`, "
        "default 10,000); counted from the job's parameters, never from data.",
        "List fewer groups (split the job), or ask the data owner to raise `max_groups`.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "output_cap_exceeded",
        "The job releases more outputs than a dataset's policy allows per job "
        "(`max_outputs`, default 50,000); counted from the job, never from data.",
        "Ask for fewer outputs (fewer groups or bins), or ask the data owner to raise "
        "`max_outputs`.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "exact_not_allowed",
        "An exact (noiseless) release was asked where an owner's policy does not allow it "
        "for this protocol (`exact_protocols`).",
        "Remove `privacy.exact` to get a DP release.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "dp_unavailable",
        "No DP release is possible: the protocol has none, or the noise it would need "
        "exceeds what the exact sampler draws (sensitivity or scale too large). A node "
        "refusing a protocol without DP release answers PERMISSION_DENIED.",
        "Narrow the columns' declared bounds or decimals, ask for a larger privacy "
        "parameter, or ask for an exact release where every owner allows it.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "rho_above_policy",
        "The job's privacy cost (ρ, or ε²/2 for pure ε-DP) exceeds a dataset's per-job "
        "ceiling `max_rho`.",
        "Ask for a smaller ρ or ε (more noise).",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "sensitivity_understated",
        "The release plan assumes smaller sensitivities than this data owner's dataset "
        "contributes.",
        "Submit again with an up-to-date client and catalog (the plan is computed from "
        "the published bounds).",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "noise_miscalibrated",
        "The proposed noise is not the one the node computes from the job's privacy "
        "parameters and sensitivities.",
        "Submit again with a client of the node's version; investigate if it recurs.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "release_mismatch",
        "The session's release plan is not the one the submitter signed.",
        "Submit the job again; investigate the coordinator if it recurs.",
        _S.PERMISSION_DENIED,
        ends=_REJECTED,
        group=POLICY,
    ),
    Reason(
        "catalog_stale",
        "The dataset grew beyond what the catalog announced (its row count or bounds).",
        "The data owner restarts the node to republish the dataset; then submit again.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=POLICY,
    ),
    # -- budget and capacity -----------------------------------------------------------
    Reason(
        "budget_exhausted",
        "The job would exceed a dataset's remaining privacy budget at its owner's node.",
        "Ask for a smaller privacy cost, or ask the data owner for more budget "
        "(`ensnif budget`); noise is never raised instead.",
        _S.RESOURCE_EXHAUSTED,
        ends=_REJECTED,
        group=CAPACITY,
    ),
    Reason(
        "rate_limited",
        "The same question was already admitted `max_repeats` times in the policy's period.",
        "Wait for the period to pass, or ask a different question.",
        _S.RESOURCE_EXHAUSTED,
        ends=_REJECTED,
        group=CAPACITY,
    ),
    Reason(
        "resource_busy",
        "The node has no free resource for the job (e.g. no free MPC port).",
        "Submit again later, or the data owner widens the node's MPC port range.",
        _S.RESOURCE_EXHAUSTED,
        ends=_REJECTED,
        group=CAPACITY,
    ),
    Reason(
        "grpc_limit",
        "gRPC itself refused the call (e.g. a message above the size limit); set by the "
        "client when a RESOURCE_EXHAUSTED status carries no reason.",
        "Send a smaller request (fewer rows, a smaller file).",
        _S.RESOURCE_EXHAUSTED,
        group=CAPACITY,
    ),
    # -- data owners' sources ----------------------------------------------------------
    Reason(
        "data_out_of_schema",
        "A data owner's rows do not match the declared schema (type, bounds, NULL).",
        "The data owner fixes the data or the declared schema and republishes.",
        _S.INVALID_ARGUMENT,
        ends=_REJECTED + _FAILED,
        group=DATA,
    ),
    Reason(
        "source_failed",
        "A data owner's own source (its file or database) failed.",
        "The data owner checks the source named in the node's log.",
        _S.UNAVAILABLE,
        ends=_REJECTED + _FAILED,
        group=DATA,
    ),
    Reason(
        "source_timeout",
        "A data owner's own source did not answer in time.",
        "The data owner checks the database's load or raises the source's timeout.",
        _S.DEADLINE_EXCEEDED,
        ends=_REJECTED + _FAILED,
        group=DATA,
    ),
    # -- approval and start ------------------------------------------------------------
    Reason(
        "awaiting_approval",
        "Not an end: a node answers that the job waits for its administrator.",
        "The data owner's administrator runs `ensnif job approve` (or `reject`).",
        group=APPROVAL,
    ),
    Reason(
        "rejected",
        "A node rejected the job without giving a reason code (set by the coordinator).",
        "Read the job's reason; ask the node's operator.",
        ends=_REJECTED,
        group=APPROVAL,
    ),
    Reason(
        "rejected_by_owner",
        "The data owner's administrator rejected the job (`ensnif job reject`).",
        "Read the administrator's reason in the job's reason; talk to the data owner.",
        ends=_REJECTED,
        group=APPROVAL,
    ),
    Reason(
        "approval_timeout",
        "At the coordinator: a party did not approve within `propose_seconds` (or "
        "the approval timeout, for manual approval), e.g. its node is down. At a node: "
        "its administrator did not decide within `approval_seconds` (node job `aborted`).",
        "Check that every party's node runs; ask the administrators to decide sooner, "
        "then submit again.",
        ends=("failed", "aborted"),
        group=APPROVAL,
    ),
    Reason(
        "start_timeout",
        "At a node: the job was approved but never started within `start_seconds`; the "
        "node gives its port and reservation back (node job `aborted`).",
        "Nothing, usually: the coordinator has already failed the job for another reason.",
        ends=("aborted",),
        group=APPROVAL,
    ),
    Reason(
        "start_failed",
        "A node could not start the job and gave no reason code (set by the coordinator).",
        "Read the job's reason; check that node's log.",
        ends=_FAILED,
        group=APPROVAL,
    ),
    Reason(
        "cancelled",
        "The analyst cancelled the job (`ensnif job cancel`).",
        "Nothing; submit again if it was a mistake.",
        ends=("cancelled",),
        group=APPROVAL,
    ),
    # -- a running job -----------------------------------------------------------------
    Reason(
        "peer_connect_timeout",
        "The MPC peers did not all connect within the node's `connect_seconds`.",
        "Check that the parties reach each other's MPC ports (firewalls, advertised addresses).",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "singular_system",
        "A model's linear system is singular at the job's precision: a feature is constant, "
        "features are collinear, or there are no more rows than coefficients. Found inside "
        "MPC; only that one fact was opened.",
        "Drop or combine the features named as redundant, or ask for a ridge penalty "
        "(params.ridge > 0).",
        _S.FAILED_PRECONDITION,
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "model_out_of_range",
        "An exact logistic fit's weights grew past what its fixed point holds (|x·w| could "
        "reach 2^8 on the normalized features). Found inside MPC; only that one fact was "
        "opened.",
        "Raise params.l2 (a larger penalty keeps the weights small), or use the DP release.",
        _S.FAILED_PRECONDITION,
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "peer_lost",
        "A worker's MPC connection to a peer closed mid-job and no party reported a fault "
        "of its own: a party's node died (or left) with its worker. When the lost party's "
        "node is alive and reports its own failure (`worker_failed`, a data error, ...), "
        "the job carries that root cause instead (coordinator/root_cause.py).",
        "See each party's message in `ensnif job status`; the failing party's log says "
        "why; submit again.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "peer_stalled",
        "Nothing arrived from an awaited peer for `ENSNIF_PEER_SILENCE_SECONDS`: a frozen "
        "process or a link that stopped carrying data.",
        "Check the stalled party's host and the network between the parties; submit again.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "undeclared_opening",
        "A member program tried to open a value itself (`mpc.output`, a public transfer, "
        "a public zero test) instead of revealing it through the runtime: the worker "
        "stopped it before the value was opened, and nothing was released.",
        "Reveal outputs only with `p.reveal_to_analyst` (docs/programs.md); the program's "
        "author fixes the code and the owners approve the new hash.",
        _S.PERMISSION_DENIED,
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "undeclared_output",
        "A member program revealed an output its manifest does not declare (or not every "
        "declared one): the worker stopped before resharing anything, nothing was released.",
        "Declare every output in program.toml, or reveal only declared ones.",
        _S.PERMISSION_DENIED,
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "partition_failed",
        "A job running as k parallel MPC sessions per party (`params.sessions`) lost one of "
        "them at a node: that session's worker failed or was killed before it handed its "
        "partial shares to the node's first session. The whole job ends at every party and "
        "nothing is released (the partials are never opened; protocols/partitions.py).",
        "The node's operator reads `part<s>/worker.log` in the job's directory; submit "
        "again (with fewer sessions if the node is short of memory or ports).",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "worker_failed",
        "A node's worker process failed or exited without a reason (an error in the "
        "program, or the worker was killed). This is the job's reason whatever its peers "
        "reported (their `peer_lost` is a consequence); a node killed with its worker "
        "cannot report, and the job then reads `peer_lost`.",
        "The node's operator reads the job's `worker.log` at that node.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "timeout",
        "The job ran longer than its time limit (the node's or the coordinator's "
        "`job_seconds`, or it waited that long for a turn).",
        "Ask for less work, or have the operators raise `job_seconds`.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "node_restarted",
        "A node restarted while the job ran at it.",
        "Submit the job again.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "node_shutdown",
        "A node was shut down while the job ran at it.",
        "Submit the job again once the node is back.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "party_failed",
        "A party's job failed without a reason code (set by the coordinator).",
        "Read the job's reason; check that party's log.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "party_lost_job",
        "A node no longer knows the job: its state was lost.",
        "The node's operator checks the node's state directory; submit again.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "party_unreachable",
        "The coordinator could not reach a party's node for its grace period while "
        "following the job.",
        "Check that the node runs and is reachable from the coordinator; submit again.",
        ends=_FAILED,
        group=RUNNING,
    ),
    Reason(
        "result_incomplete",
        "Every node reported success but a sealed result share is missing.",
        "Submit the job again; report it if it recurs.",
        ends=_FAILED,
        group=RUNNING,
    ),
    # -- homomorphic encryption --------------------------------------------------------
    Reason(
        "unknown_model",
        "No model of that name is registered at the named member's node.",
        "List the models with `ensnif model list`; the owner registers one with "
        "`ensnif model register`.",
        _S.NOT_FOUND,
        group=HE,
    ),
    Reason(
        "model_not_allowed",
        "The model owner's policy does not let this analyst score against the model.",
        "Ask the model's owner to add you to the model's `--allow` list.",
        _S.PERMISSION_DENIED,
        group=HE,
    ),
    Reason(
        "model_row_quota",
        "Scoring these rows would pass this analyst's row quota for the model (the quota "
        "limits how much of the model the scores reveal).",
        "Score fewer rows, or ask the model's owner for a larger quota.",
        _S.RESOURCE_EXHAUSTED,
        group=HE,
    ),
    Reason(
        "he_feature_count",
        "The rows have another number of features than the model takes.",
        "Give one column per model feature, in the model's order (`ensnif model list`).",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "he_input_out_of_range",
        "A value to encrypt is not finite or lies outside what the CKKS parameters can "
        "encode; the analyst's client refuses it before encrypting (no value is sent).",
        "Scale or clip the column to the range the message states.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "he_context_invalid",
        "The public HE context does not load, holds a secret key, or its parameters are "
        "not one of the 128-bit sets the evaluator accepts.",
        "Use an Ensnif client of the same version; never send a secret context.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "he_context_mismatch",
        "A ciphertext was made under another context (another key or parameters) than "
        "the request's public context.",
        "Encrypt every ciphertext of a request with the key whose public context it sends.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "he_ciphertext_invalid",
        "A ciphertext is not a well-formed frame, does not load, or a batch lacks a ciphertext.",
        "Send the ciphertexts the Ensnif client wrote, complete and unmodified.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "he_ciphertext_tampered",
        "A batch's ciphertexts or a result do not match the digest their sender signed "
        "(changed in transit or at rest).",
        "Send the request again; if it repeats, the path between you and the node alters messages.",
        _S.PERMISSION_DENIED,
        group=HE,
    ),
    Reason(
        "he_key_invalid",
        "A key directory is missing a file, its secret file is readable by others, or it "
        "holds a key for another scheme or parameter set.",
        "Point at the right key directory, chmod 600 its secret.ctx, or use a new directory.",
        _S.FAILED_PRECONDITION,
        group=HE,
    ),
    Reason(
        "he_dataset_mismatch",
        "A ciphertext in an outsourced dataset was encrypted for another dataset (its frame "
        "names another owner/dataset than the signed manifest).",
        "Upload the dataset again from the directory `ensnif outsource encrypt` wrote.",
        _S.INVALID_ARGUMENT,
        ends=_FAILED,
        group=HE,
    ),
    Reason(
        "he_sum_out_of_range",
        "A column's rows × bound on its integer grid reach half the BFV plain modulus, so a "
        "sum of it could wrap and the masked conversion would not be exact.",
        "Declare narrower bounds or fewer decimals, or split the dataset.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "owner_offline",
        "The owner of an outsourced dataset did not come online (`ensnif outsource serve`) "
        "to approve the job and decrypt its masked values within the approval window; "
        "nothing was opened or charged.",
        "Ask the dataset's owner to run `ensnif outsource serve`, then submit the job again.",
        _S.UNAVAILABLE,
        ends=_REJECTED + _FAILED,
        group=HE,
    ),
    Reason(
        "owner_refused",
        "The owner of an outsourced dataset refused the job from its `ensnif outsource "
        "serve` client (its allow-lists, or a batch or party binding that did not verify); "
        "nothing was computed in MPC or opened.",
        "Ask the dataset's owner which jobs it approves (`--allow-protocol`, `--allow-analyst`).",
        _S.PERMISSION_DENIED,
        ends=_REJECTED + _FAILED,
        group=HE,
    ),
    Reason(
        "outsourced_not_entrusted",
        "A helper node published an outsourced dataset that its owner's signed manifest does "
        "not entrust to it (no manifest, a signature by someone else, or another owner, "
        "dataset or helper named); the coordinator did not publish it.",
        "The owner encrypts again with `ensnif outsource encrypt --helper NODE` and uploads "
        "to that node.",
        _S.PERMISSION_DENIED,
        group=HE,
    ),
    Reason(
        "outsourced_key_not_encrypted",
        "A private join reads an outsourced column as its key, but the owner did not encrypt "
        "that column as a key (`key = true` in the schema file: the limbs of its key hash); "
        "refused at the helper's admission before anything is reserved.",
        "Ask the owner to encrypt the column with `key = true` and upload it again, or join "
        "on a column it encrypted as a key.",
        _S.INVALID_ARGUMENT,
        ends=_REJECTED,
        group=HE,
    ),
    Reason(
        "outsourced_one_per_job",
        "The job reads more than one outsourced dataset; a job converts one outsourced "
        'owner\'s masked values (docs/homomorphic.md, "More than one outsourced input"); '
        "refused at submit, nothing was proposed.",
        "Run one job per outsourced dataset, or ask one owner to run a node.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "outsourced_join_path",
        "A private join with an outsourced side runs only on the PRF route (its keys are "
        "ciphertexts at the helper, which cannot tag them); the job did not ask for it.",
        'Set `params.join_path = "prf-shuffle"` in the job file and submit it again.',
        _S.INVALID_ARGUMENT,
        ends=_REJECTED,
        group=HE,
    ),
    Reason(
        "outsourced_join_unsupported",
        "The job's private join cannot take an outsourced side (`join_logistic`: no "
        "conversion of an outsourced owner's rows into it exists); refused at submit, "
        "nothing was proposed.",
        "Use a join that takes an outsourced side (intersection_size, intersection_sum, "
        "join_group_by, join_correlation, join_moments, join_regression), or ask the "
        "owner to run a node.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    Reason(
        "outsourced_not_served",
        "The job's model protocol takes no outsourced input (predict, model_accuracy: "
        'docs/homomorphic.md, "Models over outsourced rows"); the message says why; '
        "refused at submit, nothing was proposed.",
        "Score an outsourced owner's rows with `ensnif score`, or ask the owner to run a node.",
        _S.INVALID_ARGUMENT,
        group=HE,
    ),
    # -- generic -----------------------------------------------------------------------
    Reason(
        "failed_precondition",
        "The system is not in a state that allows the request.",
        "Read the message; bring about the missing precondition and try again.",
        _S.FAILED_PRECONDITION,
        ends=_REJECTED,
        group=GENERIC,
    ),
    Reason(
        "unavailable",
        "A server or node cannot be reached (or cannot listen).",
        "Check that it runs and that the address and TLS files are right; try again.",
        _S.UNAVAILABLE,
        ends=_REJECTED + _FAILED,
        group=GENERIC,
    ),
    Reason(
        "aborted",
        "The operation or job was aborted. A node's job ends `aborted` with this reason "
        "when the coordinator aborts it (because the job failed, was rejected or was "
        "cancelled elsewhere).",
        "Read the job's reason at the coordinator: it says why the job was aborted.",
        _S.ABORTED,
        ends=("aborted",),
        group=GENERIC,
    ),
    Reason(
        "internal",
        "An unexpected error; its details are only in the server's log.",
        "The operator reads the server's log (coordinator or node) at that time.",
        _S.INTERNAL,
        ends=_FAILED,
        group=GENERIC,
    ),
)

REASONS: Mapping[str, Reason] = MappingProxyType({r.name: r for r in _ALL})
GROUPS: tuple[str, ...] = (
    REQUESTS,
    IDENTITY,
    POLICY,
    CAPACITY,
    DATA,
    APPROVAL,
    RUNNING,
    HE,
    GENERIC,
)


def is_registered(name: str) -> bool:
    return name in REASONS


def get(name: str) -> Reason:
    """The registered reason ``name``; :class:`UnknownReason` if there is none."""
    try:
        return REASONS[name]
    except KeyError:
        raise UnknownReason(
            f"reason code {name!r} is not registered in ensnif_mpc/reasons.py; add it there "
            "(name, gRPC code or end state, meaning, what to do) and regenerate docs/reasons.md"
        ) from None


def action(name: str) -> str:
    """What to do about ``name``; empty for a reason this version does not know."""
    reason = REASONS.get(name)
    return reason.action if reason else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """docs/reasons.md: the registry as tables, one per group."""
    lines = [
        "# Reason codes",
        "",
        "<!-- Generated from ensnif_mpc/reasons.py by scripts/gen_reasons_doc.py;",
        "     do not edit by hand (tests/unit/ensnif_mpc/test_reasons.py checks it). -->",
        "",
        "Every refusal, error and unsuccessful end of a job carries a stable reason code.",
        "An RPC error sends it as gRPC trailing metadata `ensnif-reason` beside its status",
        "code; the CLI prints it as `error: <message> [<code>: <reason>]` and the SDK",
        "raises the matching `ensnif_mpc.errors` class. A job that did not succeed carries",
        "it as `reason_code` (a node's refusal at `Propose` becomes the `reason_code` of a",
        "`rejected` job). *Ends* lists the states a job ends in with this reason: `failed`,",
        "`rejected`, `cancelled` at the coordinator, `aborted` at a node.",
        "",
    ]
    for group in GROUPS:
        lines += [f"## {group}", "", "| reason | gRPC code | ends | meaning | what to do |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for r in _ALL:
            if r.group != group:
                continue
            code = f"`{r.grpc_code.name}`" if r.grpc_code else "—"
            ends = ", ".join(f"`{e}`" for e in r.ends) or "—"
            lines.append(
                f"| `{r.name}` | {code} | {ends} | {_cell(r.meaning)} | {_cell(r.action)} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
