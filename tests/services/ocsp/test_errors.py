"""Every revocation-service Reason is a schema FailureReason by name,
and every Problem maps to one (the tables are total)."""

from __future__ import annotations

import enum

import pytest

from services._runtime.schema import pki
from services.ca import errors as ca_errors
from services.crl import errors as crl_errors
from services.ocsp import errors as ocsp_errors

SCHEMA = set(pki().FailureReason.schema.enumerants)


@pytest.mark.parametrize("reason", [ca_errors.Reason, crl_errors.Reason,
                                    ocsp_errors.Reason],
                         ids=["ca", "crl", "ocsp"])
def test_reasons_are_schema_failure_reasons(reason: type[enum.Enum]) -> None:
    for member in reason:
        assert member.name == member.value
        assert member.name in SCHEMA


@pytest.mark.parametrize(("problem", "table"), [
    (crl_errors.Problem, crl_errors.PROBLEM_REASON),
    (ocsp_errors.Problem, ocsp_errors.PROBLEM_REASON),
], ids=["crl", "ocsp"])
def test_problem_tables_are_total(problem: type[enum.Enum],
                                  table: dict[enum.Enum, enum.Enum]) -> None:
    assert set(table) == set(problem)


def test_revocation_outcomes_use_the_three_schema_reasons() -> None:
    r = ocsp_errors.PROBLEM_REASON
    P = ocsp_errors.Problem
    assert r[P.revoked].value == "revoked"
    assert r[P.mustStapleMissing].value == "mustStapleMissing"
    assert r[P.ocspStale].value == r[P.ocspMismatch].value == (
        "ocspUnavailable")
