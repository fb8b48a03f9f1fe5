"""Every error code says whose fault it is (the metrics' ``error_type``)."""

from shared.errors import FAULTS, ErrorCode


def test_every_error_code_has_a_fault() -> None:
    assert set(FAULTS) == set(ErrorCode)
    assert set(FAULTS.values()) == {"caller", "policy", "provider", "gateway"}
    assert {code for code, fault in FAULTS.items() if fault == "provider"} == {
        code for code in ErrorCode if code.value.startswith("upstream_") and code != ErrorCode.UPSTREAM_NOT_ALLOWED
    }
