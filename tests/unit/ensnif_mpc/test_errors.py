"""The error hierarchy: reasons and codes, RpcError → domain error, domain error → abort;
every reason registered in ensnif_mpc/reasons.py."""

from __future__ import annotations

import gc

import grpc
import pytest

from ensnif_mpc.errors import (
    REASON_KEY,
    Aborted,
    BudgetExhausted,
    ColumnTypeMismatch,
    CryptoError,
    EnsnifError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    ResourceBusy,
    Unavailable,
    UnknownJob,
    from_rpc_error,
    grpc_errors,
)
from ensnif_mpc.reasons import REASONS, UnknownReason


class FakeRpcError(grpc.RpcError):
    """What a grpc client call raises: code, details and trailing metadata."""

    def __init__(self, code, details="", trailing=()):
        super().__init__(details)
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


class AbortCalled(Exception):
    """grpc's ServicerContext.abort raises; so does the fake."""


class FakeContext:
    def __init__(self):
        self.trailing = None
        self.aborted = None

    def set_trailing_metadata(self, metadata):
        self.trailing = tuple(metadata)

    def abort(self, code, details):
        self.aborted = (code, details)
        raise AbortCalled(details)


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


ALL_ERRORS = [EnsnifError, *_all_subclasses(EnsnifError)]
OWN_REASON = [c for c in ALL_ERRORS if "reason" in vars(c)]


# -- the hierarchy -----------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_class_has_a_grpc_status_code(cls):
    assert isinstance(cls.code, grpc.StatusCode)
    assert cls.code != grpc.StatusCode.OK


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_class_has_a_non_empty_reason(cls):
    assert isinstance(cls.reason, str) and cls.reason


def test_reasons_defined_by_classes_are_distinct():
    reasons = [c.reason for c in OWN_REASON]

    assert len(reasons) == len(set(reasons))


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_reason_is_own_or_inherited_from_the_parent(cls):
    assert "reason" in vars(cls) or cls.reason == cls.__mro__[1].reason


def test_instance_reason_override_does_not_change_the_class():
    err = FailedPrecondition("stale", reason="catalog_stale")

    assert err.reason == "catalog_stale"
    assert FailedPrecondition.reason == "failed_precondition"


# -- from_rpc_error ----------------------------------------------------------


@pytest.mark.parametrize("cls", OWN_REASON, ids=lambda c: c.__name__)
def test_from_rpc_error_rebuilds_the_class_named_by_the_reason(cls):
    exc = FakeRpcError(cls.code, "what went wrong", [(REASON_KEY, cls.reason)])

    err = from_rpc_error(exc)

    assert type(err) is cls
    assert err.message == "what went wrong"
    assert err.reason == cls.reason


def test_from_rpc_error_prefers_reason_over_code():
    exc = FakeRpcError(grpc.StatusCode.INTERNAL, "x", [(REASON_KEY, "column_type_mismatch")])

    err = from_rpc_error(exc)

    assert type(err) is ColumnTypeMismatch


def test_from_rpc_error_ignores_other_metadata_keys():
    exc = FakeRpcError(
        grpc.StatusCode.NOT_FOUND,
        "x",
        [("x-request-id", "unknown_job"), (REASON_KEY, "unknown_job")],
    )

    err = from_rpc_error(exc)

    assert type(err) is UnknownJob


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, PermissionDenied),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.DEADLINE_EXCEEDED, Unavailable),
        (grpc.StatusCode.ABORTED, Aborted),
        (grpc.StatusCode.CANCELLED, Aborted),
        (grpc.StatusCode.UNKNOWN, EnsnifError),
        (grpc.StatusCode.INTERNAL, EnsnifError),
    ],
    ids=lambda v: getattr(v, "name", getattr(v, "__name__", str(v))),
)
def test_from_rpc_error_without_reason_falls_back_to_the_code(code, expected):
    err = from_rpc_error(FakeRpcError(code, "boom"))

    assert type(err) is expected
    assert err.reason == expected.reason


def test_a_grpc_limit_without_reason_is_not_reported_as_an_exhausted_budget():
    err = from_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max")
    )
    assert type(err) is ResourceBusy and err.reason == "grpc_limit"
    assert "larger than max" in err.message
    budget = from_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "no", [(REASON_KEY, "budget_exhausted")])
    )
    assert type(budget) is BudgetExhausted


def test_from_rpc_error_with_unknown_reason_falls_back_to_code_and_keeps_reason():
    exc = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "stale", [(REASON_KEY, "catalog_stale")]
    )

    err = from_rpc_error(exc)

    assert type(err) is FailedPrecondition
    assert err.reason == "catalog_stale"


def test_from_rpc_error_for_unreachable_server_says_so():
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))

    assert type(err) is Unavailable
    assert err.message == "cannot reach the server (connection refused)"
    assert err.reason == "unavailable"


def test_from_rpc_error_without_details_uses_the_code_name():
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, ""))

    assert err.message == "NOT_FOUND"


def test_from_rpc_error_knows_resource_busy_defined_after_the_index():
    exc = FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", [(REASON_KEY, "resource_busy")])

    err = from_rpc_error(exc)

    assert type(err) is ResourceBusy


# -- grpc_errors -------------------------------------------------------------


def test_grpc_errors_aborts_a_domain_error_with_its_code_and_message():
    ctx = FakeContext()

    with pytest.raises(AbortCalled), grpc_errors(ctx, "GetJob"):
        raise UnknownJob("no job 'j-1'")

    assert ctx.aborted == (grpc.StatusCode.NOT_FOUND, "no job 'j-1'")


def test_grpc_errors_sends_the_reason_as_trailing_metadata():
    ctx = FakeContext()

    with pytest.raises(AbortCalled), grpc_errors(ctx, "GetJob"):
        raise CryptoError("bad signature")

    assert ctx.trailing == ((REASON_KEY, "crypto_verification_failed"),)


def test_grpc_errors_sends_an_instance_reason_override():
    ctx = FakeContext()

    with pytest.raises(AbortCalled), grpc_errors(ctx, "Propose"):
        raise FailedPrecondition("catalog is stale", reason="catalog_stale")

    assert ctx.trailing == ((REASON_KEY, "catalog_stale"),)


def test_grpc_errors_turns_an_unexpected_error_into_internal():
    ctx = FakeContext()

    with pytest.raises(AbortCalled), grpc_errors(ctx, "SubmitJob"):
        raise ValueError("secret row 42: salary=123456")

    code, message = ctx.aborted
    assert code == grpc.StatusCode.INTERNAL
    assert "SubmitJob" in message
    assert ctx.trailing == ((REASON_KEY, "internal"),)


def test_grpc_errors_does_not_leak_the_unexpected_error_text():
    ctx = FakeContext()

    with pytest.raises(AbortCalled), grpc_errors(ctx, "SubmitJob"):
        raise ValueError("secret row 42: salary=123456")

    _, message = ctx.aborted
    assert "salary" not in message
    assert "123456" not in message
    assert "ValueError" not in message


def test_grpc_errors_leaves_a_successful_call_alone():
    ctx = FakeContext()

    with grpc_errors(ctx, "ListJobs"):
        result = 1 + 1

    assert result == 2
    assert ctx.aborted is None
    assert ctx.trailing is None


def test_abort_round_trips_through_from_rpc_error():
    ctx = FakeContext()
    with pytest.raises(AbortCalled), grpc_errors(ctx, "GetJob"):
        raise ColumnTypeMismatch("inputs[0].column: 'store' is of type string")
    code, message = ctx.aborted

    err = from_rpc_error(FakeRpcError(code, message, ctx.trailing))

    assert type(err) is ColumnTypeMismatch
    assert err.message == "inputs[0].column: 'store' is of type string"


# -- every reason is registered (ensnif_mpc/reasons.py) -------------------------------


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_each_error_class_default_is_registered_with_its_status_code(cls):
    assert REASONS[cls.reason].grpc_code == cls.code


def test_an_error_with_an_unregistered_reason_fails_at_construction():
    with pytest.raises(ValueError, match="not registered"):
        PolicyViolation("no", reason="made_up_at_the_raise_site")


def test_an_error_with_a_registered_reason_keeps_it():
    err = PolicyViolation("too much", reason="rho_above_policy")

    assert err.reason == "rho_above_policy" and err.code == grpc.StatusCode.PERMISSION_DENIED


def test_an_error_class_with_an_unregistered_default_fails_when_defined():
    try:
        with pytest.raises(UnknownReason):

            class Invented(FailedPrecondition):  # noqa: F841
                reason = "invented_default"

    finally:
        gc.collect()  # the refused class must not linger among __subclasses__()


def test_an_error_class_whose_status_differs_from_the_registry_fails_when_defined():
    try:
        with pytest.raises(UnknownReason, match="registered with"):

            class Misfiled(FailedPrecondition):  # noqa: F841
                reason = "budget_exhausted"  # registered as RESOURCE_EXHAUSTED

    finally:
        gc.collect()


def test_a_reason_received_from_a_newer_server_is_kept_unchecked():
    exc = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "new rule", [(REASON_KEY, "reason_of_a_newer_server")]
    )

    err = from_rpc_error(exc)

    assert type(err) is FailedPrecondition and err.reason == "reason_of_a_newer_server"
