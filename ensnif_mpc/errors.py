"""One exception hierarchy for the whole system, mapped to gRPC status codes here.

Every error carries a stable machine-readable ``reason`` (sent as gRPC trailing
metadata ``ensnif-reason``) and a message a person can act on. Servicers raise
these; :func:`grpc_errors` turns them into aborts; the client turns ``RpcError``
back into the same classes with :func:`from_rpc_error`.

Every reason is registered in :mod:`ensnif_mpc.reasons` (name, status code, meaning,
what to do; docs/reasons.md is generated from it). A class whose default reason is not
registered, or registered with another status code, fails at import; an error built
with an unregistered reason raises :class:`ensnif_mpc.reasons.UnknownReason` (a
``ValueError``). Only a reason received from a server is taken as it comes, since a
newer server may know reasons this client does not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import ClassVar, NoReturn

import grpc

from ensnif_mpc import reasons

log = logging.getLogger(__name__)

REASON_KEY = "ensnif-reason"


class EnsnifError(Exception):
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[str] = "internal"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "reason" in vars(cls):
            _check_default(cls)

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            reasons.get(reason)  # UnknownReason: register it in ensnif_mpc/reasons.py
            self.reason = reason  # type: ignore[misc]  # instance override of a class default

    @classmethod
    def received(cls, message: str, reason: str | None) -> EnsnifError:
        """The error as a server sent it: its reason is kept even if this client's registry
        does not know it (the server may be newer)."""
        err = cls(message)
        if reason is not None:
            err.reason = reason  # type: ignore[misc]
        return err


def _check_default(cls: type[EnsnifError]) -> None:
    registered = reasons.get(cls.reason)
    if registered.grpc_code != cls.code:
        raise reasons.UnknownReason(
            f"{cls.__name__}.reason {cls.reason!r} is registered with "
            f"{registered.grpc_code}, but the class maps to {cls.code}"
        )


_check_default(EnsnifError)


class InvalidArgument(EnsnifError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid_argument"


class InvalidJobSpec(InvalidArgument):
    reason = "invalid_job_spec"


class ProgramInvalid(InvalidJobSpec):
    """A member program or its manifest is not valid (the message names what)."""

    reason = "program_invalid"


class InvalidConfig(InvalidArgument):
    reason = "invalid_config"


class DataError(InvalidArgument):
    """A data owner's rows do not match the declared schema (type or bounds)."""

    reason = "data_out_of_schema"


class NotFound(EnsnifError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"


class UnknownProtocol(NotFound):
    reason = "unknown_protocol"


class UnknownParty(NotFound):
    reason = "unknown_party"


class UnknownDataset(NotFound):
    reason = "unknown_dataset"


class UnknownColumn(NotFound):
    reason = "unknown_column"


class UnknownJob(NotFound):
    reason = "unknown_job"


class PermissionDenied(EnsnifError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "permission_denied"


class PolicyViolation(PermissionDenied):
    reason = "policy_violation"


class FailedPrecondition(EnsnifError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "failed_precondition"


class ColumnTypeMismatch(FailedPrecondition):
    reason = "column_type_mismatch"


class NotEnoughParties(FailedPrecondition):
    reason = "not_enough_parties"


class InvalidTransition(FailedPrecondition):
    reason = "invalid_transition"


class ResultNotReady(FailedPrecondition):
    reason = "result_not_ready"


class BudgetExhausted(EnsnifError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "budget_exhausted"


class RateLimited(EnsnifError):
    """A data owner's policy answers the same question only so often per period."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "rate_limited"


class Unavailable(EnsnifError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "unavailable"


class Aborted(EnsnifError):
    code = grpc.StatusCode.ABORTED
    reason = "aborted"


class CryptoError(EnsnifError):
    """A certificate, signature or sealed blob failed verification."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "crypto_verification_failed"


class SourceFailed(EnsnifError):
    """A data owner's own source (its database, its file) failed or timed out."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "source_failed"


class SourceTimeout(SourceFailed):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "source_timeout"


_BY_REASON: dict[str, type[EnsnifError]] = {}


def _index(cls: type[EnsnifError]) -> None:
    _BY_REASON.setdefault(cls.reason, cls)
    for sub in cls.__subclasses__():
        _index(sub)


_index(EnsnifError)

_BY_CODE: dict[grpc.StatusCode, type[EnsnifError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: BudgetExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.CANCELLED: Aborted,
}


def abort(context: grpc.ServicerContext, err: EnsnifError) -> NoReturn:
    context.set_trailing_metadata(((REASON_KEY, err.reason),))
    context.abort(err.code, err.message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


@contextlib.contextmanager
def grpc_errors(context: grpc.ServicerContext, rpc: str) -> Iterator[None]:
    """Translate domain errors into a gRPC abort; never leak internals of the unexpected."""
    try:
        yield
    except EnsnifError as err:
        log.info("%s refused: %s (%s)", rpc, err.message, err.reason)
        abort(context, err)
    except Exception:  # the one place where the unexpected becomes INTERNAL
        log.exception("%s failed unexpectedly", rpc)
        abort(context, EnsnifError(f"internal error in {rpc}; see the server log"))


def from_rpc_error(exc: grpc.RpcError) -> EnsnifError:
    """Rebuild the domain error a server sent (reason from trailing metadata)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    reason = None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == REASON_KEY:
            reason = str(value)
    cls = _BY_REASON.get(reason or "") or _BY_CODE.get(code, EnsnifError)
    if code == grpc.StatusCode.UNAVAILABLE and reason is None:
        details = f"cannot reach the server ({details})"
        reason = "unavailable"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason is None:
        # gRPC's own limits (e.g. a message above the size cap) carry no reason: they are
        # not a privacy budget, whatever the status code shares with it.
        return ResourceBusy(f"the server refused the request: {details}", reason="grpc_limit")
    return cls.received(details or code.name, reason)


class ResourceBusy(EnsnifError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "resource_busy"


_index(ResourceBusy)
