"""What of an error or a reason leaves this node: never a cell value, never a path.

A node's refusals and failures travel to the coordinator, which stores them and shows
them to the analyst. Every message that leaves the node passes through
:class:`Disclosure` (the servicer calls it for every job status, every Propose answer
and every RPC error), so one place decides what a message may carry:

- a fault of the owner's data or source (the reasons of the "Data owners' sources"
  group: ``data_out_of_schema``, ``source_failed``, ``source_timeout``) leaves as its
  registered meaning only. The message the source built (which row, which column, which
  file or database) stays in this node's store and log, for its administrator;
- every other message leaves with the node's file paths and source descriptions (a
  file path, a database URL) replaced by ``<path>`` / ``<source>``.

Sources also never put a value into a message in the first place (``ensnif_mpc.data``):
this layer is the second line, for what a source does not control (a driver's text, a
file that lacks its header line, so that its first data row reads as column names).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections.abc import Iterable, Iterator

import grpc

from ensnif_mpc import reasons
from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.errors import EnsnifError, grpc_errors

log = logging.getLogger(__name__)

# An absolute POSIX path (at least one segment after the root), not preceded by a word
# character (so "ε²/2" or "1/3" are left alone).
_PATH = re.compile(r"(?<![\w./])/(?:[\w.@%+~=-]+/)*[\w.@%+~=-]+/?")
_KEPT_BACK = "the details stay in the node's log"


def _data_reasons() -> frozenset[str]:
    return frozenset(r.name for r in reasons.REASONS.values() if r.group == reasons.DATA)


DATA_REASONS = _data_reasons()


class Disclosure:
    """The filter for one node's outgoing messages, from its datasets' sources."""

    def __init__(self, datasets: Iterable[DatasetConfig] = ()) -> None:
        secrets: set[str] = set()
        for d in datasets:
            spec = d.source
            for text in (spec.describe(), spec.url, spec.path):
                if text:
                    secrets.add(text)
        # Longest first: a description contains its path.
        self._secrets = sorted(secrets, key=len, reverse=True)

    def adding(self, datasets: Iterable[DatasetConfig]) -> Disclosure:
        """This filter, also for ``datasets`` (after a reload: old jobs keep old paths)."""
        out = Disclosure(datasets)
        out._secrets = sorted({*self._secrets, *out._secrets}, key=len, reverse=True)
        return out

    def message(self, text: str, reason: str) -> str:
        """``text`` (a refusal or failure with ``reason``) as it may leave the node."""
        if reason in DATA_REASONS:
            meaning = reasons.get(reason).meaning.rstrip(".")
            return f"{meaning} ({_KEPT_BACK})"
        for secret in self._secrets:
            text = text.replace(secret, "<source>")
        return _PATH.sub("<path>", text)

    def error(self, err: EnsnifError) -> EnsnifError:
        """The same error (class, reason) with its message as it may leave the node."""
        shown = self.message(err.message, err.reason)
        if shown == err.message:
            return err
        log.info("kept at this node: %s (%s)", err.message, err.reason)
        out = copy.copy(err)
        out.message = shown
        out.args = (shown,)
        return out

    @contextlib.contextmanager
    def grpc_errors(self, context: grpc.ServicerContext, rpc: str) -> Iterator[None]:
        """:func:`ensnif_mpc.errors.grpc_errors`, with the error filtered first."""
        with grpc_errors(context, rpc):
            try:
                yield
            except EnsnifError as err:
                raise self.error(err) from None
