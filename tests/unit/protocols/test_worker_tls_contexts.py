"""While MPyC connects, a worker's TLS contexts trust the job's CA only
(protocols.worker.consortium_ca_only): the system's trust store is neither loaded (its cost
was paid per context and worker) nor trusted on an MPC link."""

from __future__ import annotations

import ssl

import pytest

from protocols.worker import consortium_ca_only
from tests.helpers import issue_pki


@pytest.mark.parametrize("purpose", [ssl.Purpose.SERVER_AUTH, ssl.Purpose.CLIENT_AUTH])
def test_contexts_built_while_connecting_hold_no_system_ca(purpose):
    with consortium_ca_only():
        ctx = ssl.create_default_context(purpose)
    assert ctx.cert_store_stats()["x509_ca"] == 0
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_dialing_context_still_requires_and_checks_the_peer_certificate():
    with consortium_ca_only():
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_only_the_job_ca_is_trusted_once_mpyc_adds_it(tmp_path):
    issue_pki(tmp_path, {"p0": "party"})
    with consortium_ca_only():
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.load_verify_locations(cafile=str(tmp_path / "ca.crt"))
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_outside_the_connect_step_the_standard_function_is_back():
    standard = ssl.create_default_context()
    with consortium_ca_only():
        inside = ssl.create_default_context()
    assert ssl.create_default_context().cert_store_stats() == standard.cert_store_stats()
    assert inside.cert_store_stats()["x509_ca"] == 0
