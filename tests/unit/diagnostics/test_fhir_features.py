"""FHIR R4 resources to a model's feature row (issue 7): windows, aggregates, panels, units,
statuses, partial dates, derived BMI, CDS Hooks prefetch and the de-identified cohort table."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.diagnostics import fhir_features as ff
from medweave.diagnostics.datasets import load
from medweave.diagnostics.fhir_features import (
    FRAMINGHAM,
    Feature,
    FeatureSpec,
    Missing,
    cohort_table,
    convert,
    extract,
    query_plan,
)
from medweave.errors import InvalidInput

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
KEY = b"k" * 32

# --- fixtures shaped as the HL7 R4 examples and US Core vital signs ------------------------------


def patient(
    pid: str = "p1", *, gender: str | None = "female", born: str | None = "1968-04-12"
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{pid}-0042"}],
        "name": [{"family": f"Nakamura-{pid}", "given": ["Aiko"]}],
        "address": [{"city": "Springfield", "postalCode": "01103"}],
    }
    if gender is not None:
        out["gender"] = gender
    if born is not None:
        out["birthDate"] = born
    return out


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _qty(value: Any, unit: str, code: str | None = None, system: str | None = UCUM) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "unit": unit}
    if system is not None:
        out["system"] = system
    if code is not None:
        out["code"] = code
    return out


def observation(
    oid: str,
    loinc: str,
    display: str,
    quantity: dict[str, Any] | None,
    *,
    at: str | None = "2024-05-20T09:30:00+02:00",
    status: str = "final",
    category: str = "vital-signs",
    subject: str = "Patient/p1",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "category": [
            _concept("http://terminology.hl7.org/CodeSystem/observation-category", category, category)
        ],
        "code": _concept(LOINC, loinc, display),
        "subject": {"reference": subject},
    }
    if at is not None:
        out["effectiveDateTime"] = at
    if quantity is not None:
        out["valueQuantity"] = quantity
    return out


def sbp(oid: str, value: Any, **kw: Any) -> dict[str, Any]:
    return observation(oid, "8480-6", "Systolic blood pressure", _qty(value, "mmHg", "mm[Hg]"), **kw)


def dbp(oid: str, value: Any, **kw: Any) -> dict[str, Any]:
    return observation(oid, "8462-4", "Diastolic blood pressure", _qty(value, "mmHg", "mm[Hg]"), **kw)


def bp_panel(oid: str, systolic: float, diastolic: float, **kw: Any) -> dict[str, Any]:
    """As the R4 example observation-example-bloodpressure: the values only in the components."""
    out = observation(oid, "85354-9", "Blood pressure panel with all children optional", None, **kw)
    out["component"] = [
        {
            "code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
            "valueQuantity": _qty(systolic, "mmHg", "mm[Hg]"),
        },
        {
            "code": _concept(LOINC, "8462-4", "Diastolic blood pressure"),
            "valueQuantity": _qty(diastolic, "mmHg", "mm[Hg]"),
        },
    ]
    return out


def cholesterol(
    oid: str, value: Any, unit: str = "mg/dL", loinc: str = "2093-3", **kw: Any
) -> dict[str, Any]:
    display = {
        "2093-3": "Cholesterol [Mass/volume] in Serum or Plasma",
        "14647-2": "Cholesterol [Moles/volume] in Serum or Plasma",
    }[loinc]
    return observation(oid, loinc, display, _qty(value, unit, unit), category="laboratory", **kw)


def bmi(oid: str, value: Any, **kw: Any) -> dict[str, Any]:
    return observation(oid, "39156-5", "Body mass index (BMI) [Ratio]", _qty(value, "kg/m2", "kg/m2"), **kw)


def weight(oid: str, value: Any, unit: str = "kg", **kw: Any) -> dict[str, Any]:
    return observation(oid, "29463-7", "Body weight", _qty(value, unit, unit), **kw)


def height(oid: str, value: Any, unit: str = "cm", **kw: Any) -> dict[str, Any]:
    return observation(oid, "8302-2", "Body height", _qty(value, unit, unit), **kw)


def condition(
    cid: str,
    code: str,
    display: str,
    *,
    system: str = SNOMED,
    onset: str | None = "2021-03-04",
    clinical: str = "active",
    verification: str = "confirmed",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical, clinical
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", verification, verification
        ),
        "code": _concept(system, code, display),
        "subject": {"reference": "Patient/p1"},
    }
    if onset is not None:
        out["onsetDateTime"] = onset
    return out


def chart() -> list[dict[str, Any]]:
    return [
        bp_panel("bp-1", 128, 82),
        cholesterol("chol-1", 212, at="2023-11-02"),
        bmi("bmi-1", 24.3),
        condition("dm-1", "44054006", "Diabetes mellitus type 2"),
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        },  # not read
    ]


def one(
    feature: Feature,
    resources: list[dict[str, Any]],
    *,
    who: dict[str, Any] | None = None,
    as_of: datetime = AS_OF,
) -> tuple[float | None, tuple[Missing, ...], list[str]]:
    out = extract(FeatureSpec((feature,)), who or patient(), resources, as_of=as_of)
    return out.values[feature.name], out.missing, out.sources[feature.name]


SBP = Feature("sbp", "observation", (ff.SYSTOLIC,), "mm[Hg]", window_days=730)
DBP = Feature("dbp", "observation", (ff.DIASTOLIC,), "mm[Hg]", window_days=730)
SCL = Feature("scl", "observation", (ff.CHOLESTEROL, ff.CHOLESTEROL_MOLAR), "mg/dL", window_days=1826)
BMI = Feature("bmi", "observation", (ff.BMI,), "kg/m2", window_days=730)


# --- the fixtures and the codes ------------------------------------------------------------------


def test_the_fixtures_are_valid_fhir_resources() -> None:
    resources = [
        patient(),
        *chart(),
        sbp("s", 1),
        dbp("d", 1),
        weight("w", 80),
        height("h", 180),
        cholesterol("c", 5.2, "mmol/L", "14647-2"),
    ]
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_the_codes_are_the_loinc_codes_of_the_quantities() -> None:
    # LOINC: 8480-6 systolic and 8462-4 diastolic blood pressure, 85354-9 the blood pressure panel
    # (US Core), 2093-3 cholesterol mass/volume and 14647-2 moles/volume in serum or plasma,
    # 39156-5 BMI, 29463-7 body weight, 8302-2 body height.
    assert (ff.SYSTOLIC, ff.DIASTOLIC, ff.BP_PANELS[0]) == (
        "http://loinc.org|8480-6",
        "http://loinc.org|8462-4",
        "http://loinc.org|85354-9",
    )
    assert (ff.CHOLESTEROL, ff.CHOLESTEROL_MOLAR) == ("http://loinc.org|2093-3", "http://loinc.org|14647-2")
    assert (ff.BMI, ff.WEIGHT, ff.HEIGHT) == (
        "http://loinc.org|39156-5",
        "http://loinc.org|29463-7",
        "http://loinc.org|8302-2",
    )


def test_framingham_names_are_the_dataset_feature_columns() -> None:
    assert FRAMINGHAM.names() == tuple(load("framingham").features.columns)


def test_framingham_from_a_full_chart() -> None:
    out = extract(FRAMINGHAM, patient(), chart(), as_of=AS_OF)
    assert out.values == {
        "num_sbp": 128.0,
        "num_dbp": 82.0,
        "num_scl": 212.0,
        "num_age": 56.0,
        "num_bmi": 24.3,
        "fac_sex=2": 1.0,
    }
    assert out.missing == ()
    assert out.sources["num_sbp"] == out.sources["num_dbp"] == ["Observation/bp-1"]
    assert out.sources["num_age"] == out.sources["fac_sex=2"] == ["Patient/p1"]


def test_an_empty_chart_names_every_missing_observation_with_its_code_and_window() -> None:
    out = extract(FRAMINGHAM, patient(gender="male"), [], as_of=AS_OF)
    assert out.values["num_age"] == 56.0 and out.values["fac_sex=2"] == 0.0
    assert [m.feature for m in out.missing] == ["num_sbp", "num_dbp", "num_scl", "num_bmi"]
    reasons = {m.feature: m.reason for m in out.missing}
    assert reasons["num_sbp"] == "no systolic blood pressure (LOINC 8480-6) in the last 730 days"
    assert reasons["num_scl"] == "no total cholesterol (LOINC 2093-3 or LOINC 14647-2) in the last 1826 days"
    assert (
        "body weight (LOINC 29463-7)" in reasons["num_bmi"]
        and "body height (LOINC 8302-2)" in reasons["num_bmi"]
    )
    assert all(out.values[m.feature] is None for m in out.missing)


# --- time windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "counted"),
    [
        ("2022-06-02T12:00:00Z", True),  # exactly as_of - 730 days
        ("2022-06-02T11:59:59Z", False),  # one second older
        ("2022-06-02T14:00:00+02:00", True),  # the same instant as the edge, in another zone
        ("2024-06-01T12:00:00Z", True),  # exactly as_of
        ("2024-06-01T12:00:01Z", False),  # one second after as_of
        ("2022-06-02", False),  # a date stands for its first instant, before the edge at noon
        ("2022-06-03", True),
        ("2024-06-01", True),  # today, with no time
        ("2024-06-02", False),  # tomorrow
        ("2023", True),  # a year: its first instant is in the window
        ("2022", False),  # it may be older than the window
    ],
)
def test_window_edges(at: str, counted: bool) -> None:
    value, missing, _ = one(SBP, [sbp("s", 131, at=at)])
    assert value == (131.0 if counted else None)
    assert bool(missing) is not counted


def test_a_reading_outside_the_window_is_named_in_the_reason() -> None:
    value, missing, _ = one(
        SBP, [sbp("old", 150, at="2019-01-01T08:00:00Z"), sbp("new", 140, at="2025-01-01")]
    )
    assert value is None
    assert missing[0].reason == (
        "no systolic blood pressure (LOINC 8480-6) in the last 730 days; "
        "ignored: 1 after as_of, 1 older than the window"
    )


def test_no_window_takes_any_past_reading() -> None:
    assert (
        one(Feature("x", "observation", (ff.SYSTOLIC,), "mm[Hg]"), [sbp("s", 150, at="1999-01-01")])[0] == 150
    )


# --- aggregates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregate", "expected", "refs"),
    [
        ("latest", 140.0, ["Observation/c"]),
        ("mean", 130.0, ["Observation/a", "Observation/b", "Observation/c"]),
        ("max", 140.0, ["Observation/c"]),
        ("min", 120.0, ["Observation/a"]),
        ("count", 3.0, ["Observation/a", "Observation/b", "Observation/c"]),
        ("present", 1.0, ["Observation/a", "Observation/b", "Observation/c"]),
    ],
)
def test_aggregates(aggregate: ff.Aggregate, expected: float, refs: list[str]) -> None:
    readings = [
        sbp("b", 130, at="2023-06-01T10:00:00Z"),
        sbp("c", 140, at="2024-05-01T10:00:00Z"),
        sbp("a", 120, at="2022-12-01T10:00:00Z"),
    ]
    feature = Feature("f", "observation", (ff.SYSTOLIC,), "mm[Hg]", 730, aggregate)
    assert one(feature, readings)[0] == expected
    assert one(feature, readings)[2] == refs


def test_count_and_present_are_zero_not_missing_when_nothing_is_recorded() -> None:
    for aggregate in ("count", "present"):
        assert one(Feature("f", "observation", (ff.SYSTOLIC,), aggregate=aggregate), []) == (0.0, (), [])


def test_latest_with_disagreeing_simultaneous_readings_is_missing() -> None:
    at = "2024-05-01T10:00:00Z"
    value, missing, _ = one(SBP, [sbp("a", 120, at=at), sbp("b", 135, at=at), sbp("c", 150, at="2024-01-01")])
    assert value is None
    assert (
        missing[0].reason
        == "systolic blood pressure (LOINC 8480-6): conflicting values at the latest time (120, 135)"
    )
    # the same reading recorded twice (a panel and a lone systolic) agrees, and both are sources
    value, missing, refs = one(SBP, [sbp("a", 120, at=at), bp_panel("p", 120, 80, at=at)])
    assert (value, missing, refs) == (120.0, (), ["Observation/a", "Observation/p"])


def test_optional_features_are_none_without_a_missing_entry() -> None:
    feature = Feature("sbp", "observation", (ff.SYSTOLIC,), "mm[Hg]", 730, required=False)
    assert one(feature, []) == (None, (), [])


# --- panels, statuses, values and times -------------------------------------------------------------


def test_panel_components_give_systolic_and_diastolic() -> None:
    out = extract(FeatureSpec((SBP, DBP)), patient(), [bp_panel("bp", 141, 92)], as_of=AS_OF)
    assert out.values == {"sbp": 141.0, "dbp": 92.0}
    # a panel with the diastolic component only leaves the systolic missing
    panel = bp_panel("bp", 141, 92)
    panel["component"] = panel["component"][1:]
    out = extract(FeatureSpec((SBP, DBP)), patient(), [panel], as_of=AS_OF)
    assert out.values == {"sbp": None, "dbp": 92.0}


def test_the_panel_code_alone_is_not_a_systolic_reading() -> None:
    panel = bp_panel("bp", 141, 92)
    panel["valueQuantity"], panel["component"] = _qty(141, "mmHg", "mm[Hg]"), []
    assert one(SBP, [panel])[0] is None


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("final", True),
        ("amended", True),
        ("corrected", True),
        ("preliminary", False),
        ("registered", False),
        ("entered-in-error", False),
        ("cancelled", False),
        ("unknown", False),
    ],
)
def test_only_final_amended_or_corrected_observations_count(status: str, counted: bool) -> None:
    value, missing, _ = one(SBP, [sbp("s", 120, status=status)])
    assert value == (120.0 if counted else None)
    if not counted:
        assert missing[0].reason.endswith(f"ignored: 1 with status {status}")


def test_an_entered_in_error_latest_reading_falls_back_to_the_one_before() -> None:
    wrong = sbp("wrong", 210, at="2024-05-30T10:00:00Z", status="entered-in-error")
    assert one(SBP, [wrong, sbp("ok", 124, at="2024-05-01T10:00:00Z")])[0] == 124.0


def test_future_readings_are_ignored() -> None:
    readings = [sbp("then", 124, at="2024-05-01T10:00:00Z"), sbp("later", 180, at="2024-07-01T10:00:00Z")]
    assert one(SBP, readings)[:1] == (124.0,)
    assert one(SBP, readings, as_of=datetime(2024, 8, 1, tzinfo=UTC))[0] == 180.0


@pytest.mark.parametrize(
    "change",
    [
        {
            "valueQuantity": {
                "value": 120,
                "comparator": "<",
                "unit": "mmHg",
                "system": UCUM,
                "code": "mm[Hg]",
            }
        },
        {"valueQuantity": {"value": "120", "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        {"valueQuantity": {"value": True, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        {"valueQuantity": {"value": float("nan"), "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        {"valueQuantity": None, "valueString": "120"},
        {
            "valueQuantity": None,
            "dataAbsentReason": _concept(
                "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed", "Not Performed"
            ),
        },
        {"effectiveDateTime": "yesterday"},
        {"effectiveDateTime": "2024-05-01T10:00"},  # a dateTime with a time needs seconds and a zone
        {"effectiveDateTime": None},
    ],
)
def test_readings_without_an_exact_number_or_a_readable_date_are_ignored(change: dict[str, Any]) -> None:
    reading = sbp("s", 120)
    for key, value in change.items():
        if value is None:
            reading.pop(key)
        else:
            reading[key] = value
    assert one(SBP, [reading])[0] is None


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ({"effectivePeriod": {"start": "2024-05-01T08:00:00Z", "end": "2024-05-02T08:00:00Z"}}, 2.0),
        (
            {"effectivePeriod": {"start": "2024-05-01T08:00:00Z", "end": "2024-06-02T08:00:00Z"}},
            1.0,
        ),  # ends after
        ({"effectiveInstant": "2024-05-03T08:00:00.123Z"}, 2.0),
        ({"issued": "2024-05-03T08:00:00+00:00"}, 2.0),
        ({"issued": "2024-07-03T08:00:00+00:00"}, 1.0),
    ],
)
def test_the_time_of_a_reading(timing: dict[str, Any], expected: float) -> None:
    reading = sbp("s", 120, at=None) | timing
    feature = Feature("n", "observation", (ff.SYSTOLIC,), window_days=730, aggregate="count")
    assert one(feature, [reading, sbp("t", 120)])[0] == expected


# --- units -----------------------------------------------------------------------------------------


def test_cholesterol_in_mmol_per_litre_is_converted_to_mg_per_dl() -> None:
    value, missing, refs = one(SCL, [cholesterol("c", 5.2, "mmol/L", "14647-2")])
    assert value == pytest.approx(5.2 * 38.67, abs=1e-9) and missing == () and refs == ["Observation/c"]
    # a lab that codes 2093-3 but reports mmol/L is still cholesterol
    assert one(SCL, [cholesterol("c", 5.2, "mmol/L")])[0] == pytest.approx(201.084, abs=1e-9)


@pytest.mark.parametrize(
    ("value", "unit", "target", "code", "expected", "tolerance"),
    [
        (1.0, "[lb_av]", "kg", "", 0.45359237, 0.0),  # exact by definition
        (1.0, "[in_i]", "cm", "", 2.54, 1e-12),
        (6.0, "[ft_i]", "m", "", 1.8288, 1e-12),
        (16.0, "kPa", "mm[Hg]", "", 120.01, 0.01),  # 1 kPa = 7.50062 mm[Hg]
        (1.0, "mmol/L", "mg/dL", "http://loinc.org|2093-3", 38.67, 1e-9),  # AMA SI table, cholesterol
        (1.0, "mmol/L", "mg/dL", "http://loinc.org|2345-7", 18.0, 0.02),  # glucose; ADA uses 18
        (1.0, "mg/dL", "umol/L", "http://loinc.org|2160-0", 88.4, 0.02),  # creatinine
        (1.0, "mmol/L", "mg/dL", "http://loinc.org|2571-8", 88.57, 0.01),  # triglycerides
        (100.0, "mg/dL", "mmol/L", "http://loinc.org|2093-3", 2.586, 0.001),
        (2.0, "g/L", "mg/dL", "", 200.0, 1e-9),
    ],
)
def test_unit_conversions_match_the_published_factors(
    value: float, unit: str, target: str, code: str, expected: float, tolerance: float
) -> None:
    assert convert(value, unit, target, code) == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize(
    ("unit", "target", "code"),
    [
        ("mmol/L", "mg/dL", "http://loinc.org|4548-4"),  # hemoglobin A1c: no molar mass known here
        ("%", "mg/dL", "http://loinc.org|2093-3"),
        ("kg", "cm", ""),
        ("mg/dL", "kg/m2", "http://loinc.org|2093-3"),
        (None, "mg/dL", "http://loinc.org|2093-3"),
        ("mmHg", "mm[Hg]", ""),  # the display text, not the UCUM code
    ],
)
def test_unknown_conversions_are_refused(unit: str | None, target: str, code: str) -> None:
    assert convert(1.0, unit, target, code) is None


def test_a_reading_in_an_unknown_unit_is_missing_with_the_unit_named() -> None:
    value, missing, _ = one(SCL, [cholesterol("c", 5.2, "mmol/mol")])
    assert value is None
    assert missing[0].reason.endswith("ignored: 1 in unit 'mmol/mol', not convertible to 'mg/dL'")


def test_a_conversion_that_overflows_is_not_a_reading() -> None:
    huge = sbp("s", 1.7e308)
    huge["valueQuantity"] = _qty(1.7e308, "kPa", "kPa")
    value, missing, _ = one(SBP, [huge])
    assert value is None and missing[0].reason.endswith(
        "ignored: 1 in unit 'kPa', not convertible to 'mm[Hg]'"
    )


def test_the_unit_code_is_read_only_from_ucum() -> None:
    local = cholesterol("c", 212)
    local["valueQuantity"] = _qty(212, "mg/dL", "mg/dL", system="http://lab.example.org/units")
    assert one(SCL, [local])[0] is None
    # a unit text alone, naming no system, is read as a UCUM code
    bare = cholesterol("c", 212)
    bare["valueQuantity"] = _qty(212, "mg/dL", system=None)
    assert one(SCL, [bare])[0] == 212.0


def test_weight_in_pounds_and_height_in_inches_give_bmi_in_kg_per_m2() -> None:
    readings = [weight("w", 176.37, "[lb_av]"), height("h", 70.87, "[in_i]")]
    value, _, _ = one(BMI, readings)
    assert value == pytest.approx(80.0 / 1.8**2, abs=0.01)


# --- BMI computed from weight and height ------------------------------------------------------------


def test_bmi_is_computed_from_weight_and_height_when_absent_and_says_so() -> None:
    value, missing, refs = one(BMI, [weight("w", 80), height("h", 180, at="2023-01-10")])
    assert value == pytest.approx(24.691, abs=0.001) and missing == ()
    assert refs[0].startswith("computed: body weight (LOINC 29463-7) / latest body height (LOINC 8302-2)")
    assert refs[1:] == ["Observation/w", "Observation/h"]


def test_a_recorded_bmi_wins_over_the_computed_one() -> None:
    assert one(BMI, [bmi("b", 31.0), weight("w", 80), height("h", 180)]) == (31.0, (), ["Observation/b"])


def test_bmi_uses_the_latest_weight_and_height() -> None:
    readings = [
        weight("w1", 100, at="2023-01-01"),
        weight("w2", 81, at="2024-05-01"),
        height("h1", 150, at="2023-01-01"),
        height("h2", 180, at="2024-01-01"),
    ]
    assert one(BMI, readings)[0] == pytest.approx(81 / 1.8**2)


@pytest.mark.parametrize(
    "readings", [[weight("w", 80), height("h", 0)], [weight("w", -80), height("h", 180)]]
)
def test_bmi_is_not_computed_from_a_weight_or_height_not_above_zero(readings: list[dict[str, Any]]) -> None:
    value, missing, _ = one(BMI, readings)
    assert value is None and missing[0].reason.endswith("ignored: 1 not above zero")


def test_bmi_without_a_height_is_missing_and_says_what_is_lacking() -> None:
    value, missing, _ = one(BMI, [weight("w", 80), height("h", 180, at="2019-01-01")])
    assert value is None
    assert missing[0].reason == (
        "no body mass index (LOINC 39156-5) in the last 730 days; cannot compute it: no body height "
        "(LOINC 8302-2) in the last 730 days; ignored: 1 older than the window"
    )


# --- age and sex -------------------------------------------------------------------------------------


AGE = Feature("age", "age")
FEMALE = Feature("female", "sex", sex_value="female")


@pytest.mark.parametrize(
    ("born", "as_of", "expected"),
    [
        ("1968-04-12", AS_OF, 56.0),
        ("1968-06-01", AS_OF, 56.0),  # the birthday itself
        ("1968-06-02", AS_OF, 55.0),
        ("1968-01", AS_OF, 56.0),  # every day of January 1968 gives 56 on 1 June 2024
        ("1968-06", AS_OF, None),  # 56 if born on 1 June, 55 after
        ("1968", AS_OF, None),  # 55 or 56
        ("1968", datetime(2024, 12, 31, 23, 0, tzinfo=UTC), 56.0),  # any day of 1968: 56
        ("2000-02-29", datetime(2023, 2, 28, 12, tzinfo=UTC), 22.0),
        ("2000-02-29", datetime(2023, 3, 1, 12, tzinfo=UTC), 23.0),
        # as_of's own calendar date: 1 June 01:00 at UTC+12 is still 31 May in UTC
        (
            "1968-06-01",
            datetime(2024, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=12))),
            56.0,
        ),
        ("1968-02-30", AS_OF, None),
        ("1968-00", AS_OF, None),
        ("1968-04-00", AS_OF, None),
        ("2024", AS_OF, None),  # born this year, perhaps after as_of
        ("2024-06-01", AS_OF, 0.0),
        ("12/04/1968", AS_OF, None),
        ("2025-01-01", AS_OF, None),
        (None, AS_OF, None),
    ],
)
def test_age_in_completed_years(born: str | None, as_of: datetime, expected: float | None) -> None:
    value, missing, refs = one(AGE, [], who=patient(born=born), as_of=as_of)
    assert value == expected
    assert (missing == ()) is (expected is not None)
    assert refs == (["Patient/p1"] if expected is not None else [])


def test_a_partial_birth_date_says_which_ages_it_allows() -> None:
    _, missing, _ = one(AGE, [], who=patient(born="1968"))
    assert missing == (
        Missing("age", "Patient.birthDate 1968 is partial: on 2024-06-01 the age is 55 or 56"),
    )


@pytest.mark.parametrize(
    ("gender", "expected"), [("female", 1.0), ("male", 0.0), ("other", None), ("unknown", None), (None, None)]
)
def test_sex_is_never_guessed(gender: str | None, expected: float | None) -> None:
    value, missing, _ = one(FEMALE, [], who=patient(gender=gender))
    assert value == expected
    if expected is None:
        assert missing[0].feature == "female"
        assert (repr(gender) if gender else "no Patient.gender") in missing[0].reason


# --- conditions ------------------------------------------------------------------------------------


DIABETES = Feature(
    "diabetes",
    "condition",
    (f"{SNOMED}|44054006", "http://hl7.org/fhir/sid/icd-10-cm|E11.9"),
    aggregate="present",
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, 1.0),
        ({"clinical": "recurrence"}, 1.0),
        ({"clinical": "relapse"}, 1.0),
        ({"clinical": "resolved"}, 0.0),
        ({"clinical": "inactive"}, 0.0),
        ({"verification": "refuted"}, 0.0),
        ({"verification": "entered-in-error"}, 0.0),
        ({"verification": "provisional"}, 1.0),
        ({"onset": "2025-01-01"}, 0.0),  # after as_of
        ({"onset": None}, 1.0),  # undated, but on the chart, and no window
    ],
)
def test_condition_statuses(change: dict[str, Any], expected: float) -> None:
    assert one(DIABETES, [condition("c", "44054006", "Diabetes mellitus type 2", **change)])[0] == expected


def test_condition_codes_windows_and_counts() -> None:
    icd = condition(
        "i",
        "E11.9",
        "Type 2 diabetes mellitus without complications",
        system="http://hl7.org/fhir/sid/icd-10-cm",
        onset="2024-01-01",
    )
    old = condition("s", "44054006", "Diabetes mellitus type 2", onset="2010-05-05")
    other = condition("h", "38341003", "Hypertensive disorder")
    assert one(DIABETES, [icd, old, other]) == (1.0, (), ["Condition/i", "Condition/s"])
    counted = Feature("n", "condition", DIABETES.codes, window_days=365, aggregate="count")
    assert one(counted, [icd, old, other])[0] == 1.0
    undated = condition("u", "44054006", "Diabetes mellitus type 2", onset=None)
    assert one(counted, [undated])[0] == 0.0  # cannot be placed in a window
    recorded = undated | {"recordedDate": "2024-02-02"}
    assert one(counted, [recorded])[0] == 1.0


# --- input errors ----------------------------------------------------------------------------------


def test_resources_of_another_patient_are_refused() -> None:
    with pytest.raises(InvalidInput, match="Patient/p2"):
        one(SBP, [sbp("s", 120, subject="Patient/p2")])
    with pytest.raises(InvalidInput, match="Patient/p2"):
        one(SBP, [sbp("s", 120, subject="https://fhir.example.org/r4/Patient/p2/_history/3")])
    assert one(SBP, [sbp("s", 120, subject="https://fhir.example.org/r4/Patient/p1")])[0] == 120.0


def test_duplicates_count_once_and_two_versions_are_refused() -> None:
    count = Feature("n", "observation", (ff.SYSTOLIC,), aggregate="count")
    assert one(count, [sbp("s", 120), sbp("s", 120)])[0] == 1.0
    with pytest.raises(InvalidInput, match="two different versions of Observation/s"):
        one(count, [sbp("s", 120), sbp("s", 125)])


def test_as_of_must_be_timezone_aware_and_the_patient_a_patient() -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        extract(FRAMINGHAM, patient(), [], as_of=datetime(2024, 6, 1))
    with pytest.raises(InvalidInput, match="Patient"):
        extract(FRAMINGHAM, sbp("s", 1), [], as_of=AS_OF)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "condition", "codes": ("http://snomed.info/sct|1",), "aggregate": "mean"},
        {"source": "condition", "codes": ()},
        {"source": "observation", "codes": ("8480-6",)},
        {"source": "observation", "codes": (ff.SYSTOLIC,), "window_days": -1},
        {"source": "observation", "codes": (ff.SYSTOLIC,), "window_days": True},
        {"source": "observation", "codes": (ff.SYSTOLIC,), "aggregate": "median"},
        {"source": "sex"},
        {"source": "sex", "sex_value": "other"},
        {"source": "age", "window_days": 30},
        {"source": "age", "unit": "mo"},
        {"source": "bloodwork"},
        {"source": "age", "name": ""},
    ],
)
def test_inconsistent_features_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Feature(**{"name": "f", **kwargs})


def test_a_spec_round_trips_through_a_dict_and_json() -> None:
    data = json.loads(json.dumps(FRAMINGHAM.to_dict()))
    assert data["version"] == 1 and data["features"][0]["codes"] == ["http://loinc.org|8480-6"]
    assert FeatureSpec.from_dict(data) == FRAMINGHAM
    with pytest.raises(InvalidInput):
        FeatureSpec.from_dict({"features": [{"name": "x", "source": "age", "colour": "red"}]})
    with pytest.raises(InvalidInput):
        FeatureSpec.from_dict({"version": 2, "features": []})
    with pytest.raises(InvalidInput, match="unique"):
        FeatureSpec((AGE, AGE))


# --- the CDS Hooks prefetch ------------------------------------------------------------------------


def test_query_plan_for_framingham() -> None:
    obs = "Observation?patient={{context.patientId}}&code="
    panels = "http://loinc.org|85354-9,http://loinc.org|55284-4"
    assert query_plan(FRAMINGHAM) == {
        "patient": "Patient/{{context.patientId}}",
        "observation-num_sbp": f"{obs}http://loinc.org|8480-6,{panels}",
        "observation-num_dbp": f"{obs}http://loinc.org|8462-4,{panels}",
        "observation-num_scl": f"{obs}http://loinc.org|2093-3,http://loinc.org|14647-2",
        "observation-num_bmi": f"{obs}http://loinc.org|39156-5,"
        "http://loinc.org|29463-7,http://loinc.org|8302-2",
    }


def test_query_plan_groups_codes_and_keeps_keys_apart() -> None:
    spec = FeatureSpec(
        (
            DIABETES,
            Feature("diabetes count", "condition", DIABETES.codes, aggregate="count"),  # same search
            Feature("sbp-mean", "observation", (ff.SYSTOLIC,), aggregate="mean"),
            Feature("sbp=mean", "observation", (ff.SYSTOLIC, "http://loinc.org|8459-0"), aggregate="mean"),
            AGE,
        )
    )
    assert query_plan(spec) == {
        "patient": "Patient/{{context.patientId}}",
        "condition-diabetes": "Condition?patient={{context.patientId}}&code="
        "http://snomed.info/sct|44054006,http://hl7.org/fhir/sid/icd-10-cm|E11.9",
        "observation-sbp-mean": "Observation?patient={{context.patientId}}&code="
        "http://loinc.org|8480-6,http://loinc.org|85354-9,http://loinc.org|55284-4",
        "observation-sbp-mean-2": "Observation?patient={{context.patientId}}&code="
        "http://loinc.org|8480-6,http://loinc.org|8459-0,http://loinc.org|85354-9,http://loinc.org|55284-4",
    }


# --- the de-identified cohort table ---------------------------------------------------------------


CHD = Feature("chd", "condition", (f"{SNOMED}|53741008",), aggregate="present")  # coronary arteriosclerosis


def cohort() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    def mine(pid: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in resources:
            r["subject"] = {"reference": f"Patient/{pid}"}
        return resources

    return [
        (patient("p1"), mine("p1", chart())),
        (
            patient("p2", gender="male", born="1929-02-03"),
            mine("p2", [sbp("s2", 150), condition("c2", "53741008", "Coronary arteriosclerosis")]),
        ),
        (patient("p3", gender="other", born="1990"), []),
    ]


def test_cohort_rows_carry_no_names_ids_or_dates() -> None:
    rows, report = cohort_table(FRAMINGHAM, cohort(), as_of=AS_OF, outcome=CHD, pseudonym_key=KEY)
    assert [set(r) for r in rows] == [{"pid", *FRAMINGHAM.names(), "chd"}] * 3
    dumped = json.dumps([rows, report])
    for leak in (
        "p1",
        "p2",
        "p3",
        "Nakamura",
        "Aiko",
        "MRN",
        "1968",
        "1929",
        "1990",
        "04-12",
        "Springfield",
        "01103",
        "Observation/",
        "Patient/",
        "2024",
    ):
        assert leak not in dumped
    assert all(isinstance(v, float) or v is None for r in rows for k, v in r.items() if k != "pid")


def test_cohort_pseudonyms_are_keyed_hmacs_stable_and_sorted() -> None:
    rows, _ = cohort_table(FRAMINGHAM, cohort(), as_of=AS_OF, outcome=None, pseudonym_key=KEY)
    again, _ = cohort_table(FRAMINGHAM, reversed(cohort()), as_of=AS_OF, outcome=None, pseudonym_key=KEY)
    other, _ = cohort_table(FRAMINGHAM, cohort(), as_of=AS_OF, outcome=None, pseudonym_key=b"x" * 32)
    expected = sorted(hmac.new(KEY, p.encode(), hashlib.sha256).hexdigest()[:32] for p in ("p1", "p2", "p3"))
    assert [r["pid"] for r in rows] == expected
    assert rows == again
    assert not {r["pid"] for r in rows} & {r["pid"] for r in other}


def test_cohort_caps_age_at_90_and_reports_counts() -> None:
    rows, report = cohort_table(FRAMINGHAM, cohort(), as_of=AS_OF, outcome=CHD, pseudonym_key=KEY)
    by_sex = {r["fac_sex=2"]: r for r in rows}
    assert by_sex[0.0]["num_age"] == 90.0  # born 1929: 95 on 1 June 2024
    assert by_sex[0.0]["chd"] == 1.0 and by_sex[1.0]["chd"] == 0.0
    assert by_sex[1.0]["num_age"] == 56.0
    assert report == {
        "rows": 3,
        "complete": 1,
        "missing": {
            "num_sbp": 1,
            "num_dbp": 2,
            "num_scl": 2,
            "num_age": 1,
            "num_bmi": 2,
            "fac_sex=2": 1,
            "chd": 0,
        },
        "ages_90_or_older": 1,
    }


@pytest.mark.parametrize(("born", "age", "counted"), [("1934-06-01", 90.0, 1), ("1934-06-02", 89.0, 0)])
def test_cohort_age_90_is_the_first_capped_age(born: str, age: float, counted: int) -> None:
    rows, report = cohort_table(
        FeatureSpec((AGE,)), [(patient(born=born), [])], as_of=AS_OF, outcome=None, pseudonym_key=KEY
    )
    assert rows[0]["age"] == age and report["ages_90_or_older"] == counted


def test_cohort_refuses_weak_keys_missing_or_repeated_ids_and_a_pid_column() -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        cohort_table(FRAMINGHAM, cohort(), as_of=AS_OF, outcome=None, pseudonym_key=b"short")
    nameless = patient("p1")
    del nameless["id"]
    cohorts: list[list[tuple[dict[str, Any], list[dict[str, Any]]]]] = [
        [(nameless, [])],
        [(patient("p1"), []), (patient("p1"), [])],
    ]
    for bad in cohorts:
        with pytest.raises(InvalidInput, match="id of its own"):
            cohort_table(FRAMINGHAM, bad, as_of=AS_OF, outcome=None, pseudonym_key=KEY)
    with pytest.raises(InvalidInput, match="pid"):
        cohort_table(FeatureSpec((Feature("pid", "age"),)), [], as_of=AS_OF, outcome=None, pseudonym_key=KEY)


# --- properties ------------------------------------------------------------------------------------


#: The codes the random charts use, each with the units it comes in; a few odd units besides.
_UNITS_OF = {
    "8480-6": ["mm[Hg]", "kPa"],
    "8462-4": ["mm[Hg]", "kPa"],
    "85354-9": ["mm[Hg]"],
    "2093-3": ["mg/dL", "mmol/L"],
    "14647-2": ["mmol/L", "mg/dL"],
    "39156-5": ["kg/m2"],
    "29463-7": ["kg", "[lb_av]", "g"],
    "8302-2": ["cm", "[in_i]", "m"],
    "718-7": ["g/dL"],
}
_ODD_UNITS = ["%", "mmHg", "mg", "", None]
#: Times near as_of, some the same instant written two ways (2024-05-01T10:00Z), some on the edges.
_NEAR = [
    "2024-05-01T10:00:00Z",
    "2024-05-01T12:00:00+02:00",
    "2024-05-01",
    "2024-05",
    "2024",
    "2023-11-30T08:15:00-05:00",
    "2022-06-02T12:00:00Z",
    "2024-06-01T12:00:00Z",
    "2024-06-01T12:00:01Z",
]


def _mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three draws in four from ``common``; shrinking goes towards it."""
    return st.integers(0, 3).flatmap(lambda i: rare if i == 3 else common)


_times = _mostly(
    st.sampled_from(_NEAR),
    st.one_of(
        st.datetimes(
            min_value=datetime(1990, 1, 1),
            max_value=datetime(2030, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))]),
        ).map(lambda d: d.isoformat(timespec="seconds")),
        st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 1, 1)).flatmap(
            lambda d: st.sampled_from([d.isoformat(), d.isoformat()[:7], d.isoformat()[:4]])
        ),
        st.text(max_size=12),
        st.none(),
        st.integers(),
    ),
)
_values = _mostly(
    st.one_of(st.integers(1, 300), st.floats(0.5, 300), st.sampled_from([120, 120.0, 135, 0])),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.booleans(),
        st.text(max_size=4),
        st.none(),
    ),
)


@st.composite
def _quantity(draw: st.DrawFn, code: str) -> Any:
    shape = draw(st.sampled_from(["full"] * 8 + ["noise", "missing"]))
    if shape == "missing":
        return None
    if shape == "noise":
        return draw(st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers()))
    unit = draw(_mostly(st.sampled_from(_UNITS_OF.get(code, ["1"])), st.sampled_from(_ODD_UNITS)))
    system = draw(st.sampled_from([UCUM] * 4 + [None, "http://example.org/u"]))
    out = {"value": draw(_values), "unit": unit, "code": unit, "system": system}
    if draw(st.integers(0, 9)) == 0:
        out["comparator"] = draw(st.sampled_from(["<", ">=", "ad"]))
    return {k: v for k, v in out.items() if v is not None}


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


@st.composite
def _resource(draw: st.DrawFn, index: int, codes: tuple[str, ...]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Observation"] * 3 + ["Condition"]))
    out: dict[str, Any] = {"resourceType": kind}
    if draw(st.integers(0, 3)):
        out["id"] = f"r{index}"
    if draw(st.booleans()):
        out["subject"] = {"reference": "Patient/p1"}
    if kind == "Condition":
        out["code"] = _coded(SNOMED, draw(st.sampled_from(["44054006", "53741008"])))
        clinical = draw(st.sampled_from(["active", "active", "recurrence", "resolved"]))
        out["clinicalStatus"] = _coded("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)
        out[draw(st.sampled_from(["onsetDateTime", "recordedDate"]))] = draw(_times)
        return {k: v for k, v in out.items() if v is not None}
    code = draw(st.sampled_from(codes))
    out["code"] = draw(
        _mostly(st.just(_coded(LOINC, code)), st.sampled_from([_coded(SNOMED, code), {"coding": "x"}, []]))
    )
    out["status"] = draw(
        _mostly(
            st.just("final"), st.sampled_from(["amended", "corrected", "preliminary", "entered-in-error", 7])
        )
    )
    field = draw(
        _mostly(
            st.just("effectiveDateTime"), st.sampled_from(["effectiveInstant", "issued", "effectivePeriod"])
        )
    )
    time = draw(_times)
    out[field] = {"end": time} if field == "effectivePeriod" else time
    if code == "85354-9":
        parts = draw(st.lists(st.sampled_from(["8480-6", "8462-4", "8480-6", "718-7"]), max_size=3))
        out["component"] = [{"code": _coded(LOINC, c), "valueQuantity": draw(_quantity(c))} for c in parts]
    else:
        out["valueQuantity"] = draw(_quantity(code))
    return {k: v for k, v in out.items() if v is not None}


@st.composite
def _resources(draw: st.DrawFn, codes: tuple[str, ...] = tuple(_UNITS_OF)) -> list[dict[str, Any]]:
    return [draw(_resource(i, codes)) for i in range(draw(st.integers(0, 14)))]


_PROPERTY_SPEC = FeatureSpec(
    (
        *FRAMINGHAM.features,
        Feature("sbp_mean", "observation", (ff.SYSTOLIC,), "mm[Hg]", 3650, "mean"),
        Feature("scl_max", "observation", (ff.CHOLESTEROL, ff.CHOLESTEROL_MOLAR), "mmol/L", None, "max"),
        Feature("bmi_min", "observation", (ff.BMI,), None, 3650, "min"),
        Feature("n", "observation", (ff.SYSTOLIC, ff.DIASTOLIC), None, 3650, "count"),
        Feature("dm", "condition", (f"{SNOMED}|44054006",), None, 3650, "present"),
        Feature("dm_n", "condition", (f"{SNOMED}|44054006",), None, None, "count"),
    )
)


@settings(max_examples=300, deadline=None)
@given(
    resources=st.one_of(_resources(), _resources(("29463-7", "8302-2", "39156-5", "8480-6", "85354-9"))),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_charts_never_crash_and_order_never_matters(
    resources: list[dict[str, Any]], seed: int
) -> None:
    out = extract(_PROPERTY_SPEC, patient(), resources, as_of=AS_OF)
    assert set(out.values) == set(_PROPERTY_SPEC.names())
    for name, value in out.values.items():
        assert value is None or (
            isinstance(value, float) and value == value and abs(value) != float("inf")
        ), name
    assert {m.feature for m in out.missing} == {n for n, v in out.values.items() if v is None}
    shuffled = list(resources)
    random.Random(seed).shuffle(shuffled)
    assert extract(_PROPERTY_SPEC, patient(), shuffled, as_of=AS_OF) == out


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(min_value=40, max_value=260), min_size=1, max_size=8))
def test_the_mean_of_readings_is_exact_whatever_their_order(values: list[float]) -> None:
    feature = Feature("m", "observation", (ff.SYSTOLIC,), "mm[Hg]", 730, "mean")
    start = AS_OF - timedelta(days=100)
    readings = [sbp(f"s{i}", v, at=(start + timedelta(days=i)).isoformat()) for i, v in enumerate(values)]
    forward, backward = one(feature, readings)[0], one(feature, readings[::-1])[0]
    assert forward == backward == pytest.approx(sum(values) / len(values))
