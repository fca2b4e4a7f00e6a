"""A model's feature row from one patient's FHIR R4 Patient, Observation and Condition resources.

Pure: resources come in as dicts and numbers go out. The caller fetches them (`query_plan` names
the searches, as CDS Hooks prefetch templates) and turns ``Extracted.missing`` into a 412 or a
card. Nothing here guesses: a required feature without usable data is ``None`` in ``values`` and
named in ``missing`` with a reason a clinician can act on.

- Observations count with status final, amended or corrected and a ``valueQuantity`` holding a
  finite number without a comparator. A code matches Observation.code, or else a component's code
  (the blood pressure panels, LOINC 85354-9 and 55284-4); each Observation gives at most one
  reading per feature. The time is the first present of effectiveDateTime, effectiveInstant,
  effectivePeriod.end and issued; an unreadable one drops the reading.
- Conditions count with clinicalStatus active, recurrence or relapse and a verificationStatus
  neither refuted nor entered-in-error; the time is onsetDateTime, onsetPeriod.start or
  recordedDate. With no window an undated Condition counts (it is on the chart).
- Nothing after ``as_of`` counts. A window is closed: [as_of - window_days, as_of]. A date without
  a time, or a partial one (YYYY, YYYY-MM), stands for its first instant, read in UTC: a reading
  that may be older than the window is left out.
- ``latest`` is the reading with the greatest time; readings sharing it must agree, or the
  feature is missing. ``mean`` is exact (math.fsum), so the order of resources never matters.
  ``count`` and ``present`` count dated readings whatever their value, and are 0.0, never missing,
  when there are none: a condition not on the chart is taken as absent.
- Age is in completed years on as_of's own calendar date (a 29 February birthday falls on 1 March
  in other years). A partial birthDate is used only when every day it can stand for gives the same
  age ("1960-01" on 2024-03-01 is 64); otherwise the age is missing. Gender "other" or "unknown"
  leaves a sex column missing.
- Units are UCUM codes: the quantity's ``code`` when its system is UCUM, its ``unit`` text when it
  names no system. `convert` turns known alternatives into the unit the model expects; a reading
  in any other unit is dropped, and named in the reason when nothing usable is left.
- Body mass index (LOINC 39156-5) with no usable reading in the window is computed from body weight
  (29463-7) and the latest body height (8302-2) in the same window; ``sources`` says so.

`cohort_table` builds de-identified training rows: no names, ids or dates, a keyed pseudonym per
patient, ages over 89 as 90.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast, get_args

from medweave.errors import InvalidInput

Source = Literal["age", "sex", "observation", "condition"]
Aggregate = Literal["latest", "mean", "max", "min", "count", "present"]
_Resources = Sequence[Mapping[str, Any]]

UCUM = "http://unitsofmeasure.org"
SYSTOLIC = "http://loinc.org|8480-6"
DIASTOLIC = "http://loinc.org|8462-4"
BP_PANELS = ("http://loinc.org|85354-9", "http://loinc.org|55284-4")
CHOLESTEROL = "http://loinc.org|2093-3"  # Cholesterol [Mass/volume] in Serum or Plasma
CHOLESTEROL_MOLAR = "http://loinc.org|14647-2"  # Cholesterol [Moles/volume] in Serum or Plasma
BMI = "http://loinc.org|39156-5"
WEIGHT = "http://loinc.org|29463-7"
HEIGHT = "http://loinc.org|8302-2"

#: Panels whose components carry a code: `query_plan` asks for them too.
PANELS: dict[str, tuple[str, ...]] = {SYSTOLIC: BP_PANELS, DIASTOLIC: BP_PANELS}

#: What a clinician calls a code, for the reasons in `Missing`.
NAMES: dict[str, str] = {SYSTOLIC: "systolic blood pressure", DIASTOLIC: "diastolic blood pressure"}
NAMES |= {CHOLESTEROL: "total cholesterol", CHOLESTEROL_MOLAR: "total cholesterol"}
NAMES |= {BMI: "body mass index", WEIGHT: "body weight", HEIGHT: "body height"}
_SYSTEMS = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED CT"}
_SYSTEMS |= {"http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM", "http://hl7.org/fhir/sid/icd-10": "ICD-10"}

#: UCUM code -> (dimension, size in the dimension's base unit), from this table of lines
#: "dimension unit=size ...". Exact by definition: the international pound 0.45359237 kg and inch
#: 2.54 cm (UCUM [lb_av] and [in_i]; NIST SP 811, appendix B.8); mm[Hg] is 133.3220 Pa (UCUM
#: defines m[Hg] as 133.3220 kPa).
_UNIT_TABLE = """
mass kg=1 g=1e-3 [lb_av]=0.45359237 [oz_av]=0.028349523125
length m=1 cm=1e-2 mm=1e-3 [in_i]=0.0254 [ft_i]=0.3048
mass/volume g/L=1 g/dL=10 mg/dL=1e-2 mg/L=1e-3
substance/volume mol/L=1 mmol/L=1e-3 umol/L=1e-6
pressure mm[Hg]=133.3220 kPa=1000
mass/area kg/m2=1
"""
UNITS: dict[str, tuple[str, float]] = {
    unit: (line.split()[0], float(size))
    for line in _UNIT_TABLE.strip().splitlines()
    for unit, size in (pair.split("=") for pair in line.split()[1:])
}

#: mg/dL per mmol/L of the analyte a LOINC code measures, from this table of lines "factor code
#: ...": the molar mass in g/mol (IUPAC standard atomic weights) over 10. Cholesterol C27H46O,
#: 386.65 g/mol: 38.67 (total 2093-3/14647-2, HDL 2085-9/14646-4, LDL 13457-7/18262-6); glucose
#: C6H12O6, 180.16 g/mol: 18.016 (serum 2345-7/14749-6, blood 2339-0/15074-8; the ADA rounds it
#: to 18); creatinine C4H7N3O, 113.12 g/mol: 11.312 (2160-0/14682-9); triglycerides
#: 2571-8/14927-8 as triolein, 885.7 g/mol by convention: 88.57. They agree, to its precision,
#: with the AMA Manual of Style SI conversion table (mg/dL x 0.0259, 0.0555, 88.4 umol/L, 0.0113).
_MOLAR_TABLE = """
38.67 2093-3 14647-2 2085-9 14646-4 13457-7 18262-6
18.016 2345-7 14749-6 2339-0 15074-8
11.312 2160-0 14682-9
88.57 2571-8 14927-8
"""
MG_DL_PER_MMOL_L: dict[str, float] = {
    f"http://loinc.org|{code}": float(line.split()[0])
    for line in _MOLAR_TABLE.strip().splitlines()
    for code in line.split()[1:]
}

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_FINAL = frozenset({"final", "amended", "corrected"})
_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_REFUSED = frozenset({"refuted", "entered-in-error"})
_VALUED = frozenset({"latest", "mean", "max", "min"})
_DATE = re.compile(r"(\d{4})(?:-(\d\d)(?:-(\d\d))?)?", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/]+)(?:/_history/[^/]+)?$")
#: HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C): ages over 89 aggregated as "90 or older".
AGE_CAP = 90.0
PSEUDONYM_HEX = 32  # 128 bits of HMAC-SHA256


@dataclass(frozen=True)
class Feature:
    """One model column and where its value comes from in FHIR (see the module docstring)."""

    name: str
    source: Source
    codes: tuple[str, ...] = ()
    unit: str | None = None
    window_days: int | None = None
    aggregate: Aggregate = "latest"
    sex_value: str | None = None
    required: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", tuple(self.codes))
        problem = _problem(self)
        if problem:
            raise InvalidInput(f"feature {self.name!r}: {problem}")


def _problem(f: Feature) -> str | None:
    if not isinstance(f.name, str) or not f.name:
        return "a name is required"
    if f.source not in get_args(Source) or f.aggregate not in get_args(Aggregate):
        return f"unknown source {f.source!r} or aggregate {f.aggregate!r}"
    if not all(isinstance(c, str) and all(c.partition("|")[::2]) for c in f.codes):
        return "codes are 'system|code'"
    window = f.window_days
    if window is not None and (type(window) is not int or not 0 <= window <= 100_000):
        return "window_days is a whole number of days from 0 to 100000"
    if (f.unit is not None and not isinstance(f.unit, str)) or not isinstance(f.required, bool):
        return "unit is a UCUM code and required a bool"
    if f.source in ("age", "sex"):
        if f.codes or window is not None or f.aggregate != "latest":
            return f"{f.source} takes no codes, window or aggregate"
        if f.source == "age" and (f.unit not in (None, "a") or f.sex_value is not None):
            return "age is in years (unit 'a')"
        if f.source == "sex" and (f.sex_value not in ("male", "female") or f.unit is not None):
            return "sex needs sex_value 'male' or 'female'"
        return None
    if not f.codes or f.sex_value is not None:
        return f"{f.source} needs codes and no sex_value"
    if f.source == "condition" and (f.aggregate not in ("present", "count") or f.unit is not None):
        return "a condition is counted: aggregate 'present' or 'count', no unit"
    return None


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features or not all(isinstance(f, Feature) for f in self.features):
            raise InvalidInput("a feature spec needs at least one Feature")
        if len(set(self.names())) != len(self.features):
            raise InvalidInput("feature names must be unique")

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "features": [{**asdict(f), "codes": list(f.codes)} for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        known = {k.name for k in fields(Feature)}
        if not isinstance(data, Mapping):
            raise InvalidInput("a feature spec is a JSON object")
        items = data.get("features")
        if data.get("version", 1) != 1 or not isinstance(items, list):
            raise InvalidInput("a feature spec is {'version': 1, 'features': [...]}")
        features = []
        for item in items:
            if not isinstance(item, Mapping) or not set(item) <= known or "name" not in item:
                raise InvalidInput(f"a feature has the keys {sorted(known)}: {item!r}")
            codes = item.get("codes", ())
            if not isinstance(codes, list | tuple):
                raise InvalidInput(f"feature {item['name']!r}: codes is a list")
            features.append(Feature(**{**item, "codes": tuple(codes)}))
        return cls(tuple(features))


@dataclass(frozen=True)
class Missing:
    feature: str
    reason: str


@dataclass(frozen=True)
class Extracted:
    values: dict[str, float | None]
    missing: tuple[Missing, ...]
    sources: dict[str, list[str]]  # the resources each value was read from


@dataclass(frozen=True)
class _Reading:
    at: datetime
    value: float
    ref: str


def convert(value: float, unit: str | None, target: str | None, code: str) -> float | None:
    """``value`` in ``unit`` expressed in ``target`` (UCUM codes), or None when that is not known.

    Within a dimension by `UNITS`; between mass and substance concentration by the molar mass
    of the analyte ``code`` measures (`MG_DL_PER_MMOL_L`). No target takes the number as recorded.
    """
    if target is None or unit == target:
        return value
    have, want = UNITS.get(unit or ""), UNITS.get(target)
    if have is None or want is None:
        return None
    if have[0] == want[0]:
        return value * have[1] / want[1]
    factor = MG_DL_PER_MMOL_L.get(code)
    if factor is None:
        return None
    grams_per_mole = factor * 10  # mg/dL per mmol/L = (g/L per mol/L) / 10
    if (have[0], want[0]) == ("substance/volume", "mass/volume"):
        return value * have[1] * grams_per_mole / want[1]
    if (have[0], want[0]) == ("mass/volume", "substance/volume"):
        return value * have[1] / grams_per_mole / want[1]
    return None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _codes(concept: object) -> set[str]:
    out = set()
    for coding in _list(_dict(concept).get("coding")):
        system, code = _dict(coding).get("system"), _dict(coding).get("code")
        if isinstance(system, str) and isinstance(code, str):
            out.add(f"{system}|{code}")
    return out


def _instant(value: object) -> datetime | None:
    """The first instant a FHIR date, dateTime or instant stands for (UTC for a date), or None."""
    if not isinstance(value, str):
        return None
    try:
        if match := _DATE.fullmatch(value):
            return datetime(int(match[1]), int(match[2] or 1), int(match[3] or 1), tzinfo=UTC)
        return datetime.fromisoformat(value) if _DATETIME.fullmatch(value) else None
    except ValueError:
        return None


def _first(resource: Mapping[str, Any], *paths: str) -> object:
    for path in paths:
        head, _, tail = path.partition(".")
        value = resource.get(head)
        if tail:
            value = _dict(value).get(tail)
        if value is not None:
            return value
    return None


def _ref(resource: Mapping[str, Any]) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid if isinstance(rid, str) and rid else '(no id)'}"


def _what(name: str, codes: Sequence[str]) -> str:
    """``systolic blood pressure (LOINC 8480-6)``: the first code's name, else the column's."""
    listed = " or ".join(f"{_SYSTEMS.get(s, s)} {c}" for s, _, c in (x.partition("|") for x in codes))
    return f"{NAMES.get(codes[0], name)} ({listed})"


def _label(f: Feature, codes: Sequence[str] | None = None) -> str:
    when = f"in the last {f.window_days} days" if f.window_days is not None else "on record"
    return f"no {_what(f.name, codes or f.codes)} {when}"


def _why(base: str, ignored: Counter[str]) -> str:
    tally = ", ".join(f"{n} {why}" for why, n in sorted(ignored.items()) if n)
    return f"{base}; ignored: {tally}" if tally else base


def _readings(f: Feature, resources: _Resources, as_of: datetime, ignored: Counter[str]) -> list[_Reading]:
    """The usable readings of ``f`` in its window and unit; what was dropped, and why, is tallied."""
    wanted, counted = set(f.codes), f.aggregate not in _VALUED
    start = None if f.window_days is None else as_of - timedelta(days=f.window_days)
    out = []
    for resource in resources:
        holder, hit = resource, _codes(resource.get("code")) & wanted
        for component in () if hit else _list(resource.get("component")):
            holder, hit = _dict(component), _codes(_dict(component).get("code")) & wanted
            if hit:
                break
        if not hit:
            continue
        if f.source == "condition":
            clinical = _status(resource.get("clinicalStatus"), _CLINICAL)
            verification = _status(resource.get("verificationStatus"), _VERIFICATION)
            if not clinical & _ACTIVE or verification & _REFUSED:
                shown = "/".join(sorted(clinical | verification)) or "no status"
                ignored[f"not active or not confirmed ({shown})"] += 1
                continue
            raw = _first(resource, "onsetDateTime", "onsetPeriod.start", "recordedDate")
        else:
            status = resource.get("status")
            if status not in _FINAL:
                ignored[f"with status {status}"] += 1
                continue
            raw = _first(resource, "effectiveDateTime", "effectiveInstant", "effectivePeriod.end", "issued")
        at = _instant(raw)
        if at is None and f.source == "condition" and start is None and raw is None:
            at = datetime.min.replace(tzinfo=UTC)  # undated, and no window to place it in
        if at is None:
            ignored["without a readable date"] += 1
        elif at > as_of:
            ignored["after as_of"] += 1
        elif start is not None and at < start:
            ignored["older than the window"] += 1
        elif counted:
            out.append(_Reading(at, 1.0, _ref(resource)))
        else:
            value = _quantity(holder.get("valueQuantity"), f.unit, min(hit), ignored)
            if value is not None:
                out.append(_Reading(at, value, _ref(resource)))
    return out


def _status(concept: object, system: str) -> set[str]:
    return {c.partition("|")[2] for c in _codes(concept) if c.partition("|")[0] == system}


def _quantity(quantity: object, target: str | None, code: str, ignored: Counter[str]) -> float | None:
    q = _dict(quantity)
    number = q.get("value")
    try:
        usable = isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number)
    except OverflowError:  # an int too large for a float
        usable = False
    if not usable:
        ignored["without a numeric value"] += 1
        return None
    if q.get("comparator") is not None:
        ignored["with a comparator (a bound, not a value)"] += 1
        return None
    system, unit = q.get("system"), q.get("code")
    if system is None and unit is None:
        unit = q.get("unit")
    elif system != UCUM:
        unit = None
    value = convert(float(cast(float, number)), unit if isinstance(unit, str) else None, target, code)
    if value is None or not math.isfinite(value):
        ignored[f"in unit {unit!r}, not convertible to {target!r}"] += 1
        return None
    return value


def _aggregate(f: Feature, readings: list[_Reading]) -> tuple[float | None, list[str], str | None]:
    """The value, the resources it was read from, and why there is none."""
    if f.aggregate in ("count", "present"):
        refs = sorted({r.ref for r in readings})
        return float(len(readings) if f.aggregate == "count" else bool(readings)), refs, None
    if not readings:
        return None, [], None
    if f.aggregate == "latest":
        last = max(r.at for r in readings)
        chosen = [r for r in readings if r.at == last]
        values = sorted({r.value for r in chosen})
        if len(values) > 1:
            shown = ", ".join(f"{v:g}" for v in values)
            return None, [], f"conflicting values at the latest time ({shown})"
    elif f.aggregate == "mean":
        chosen = readings
        values = [math.fsum(r.value / len(readings) for r in readings)]  # exact: order-free
    else:
        pick = max if f.aggregate == "max" else min
        values = [pick(r.value for r in readings)]
        chosen = [r for r in readings if r.value == values[0]]
    return values[0], sorted({r.ref for r in chosen}), None


def _derives_bmi(f: Feature) -> bool:
    valued = f.aggregate in _VALUED and f.unit in (None, "kg/m2")
    return valued and f.source == "observation" and BMI in f.codes


def _body_mass_index(f: Feature, found: _Resources, as_of: datetime) -> tuple[float | None, list[str], str]:
    """BMI = weight (kg) / height (m)^2, each weight in the window over the latest height in it."""
    ignored: Counter[str] = Counter()
    tall = Feature("height", "observation", (HEIGHT,), "m", f.window_days)
    heavy = Feature(f.name, "observation", (WEIGHT,), "kg", f.window_days, f.aggregate)
    heights, weights = (_positive(_readings(x, found, as_of, ignored), ignored) for x in (tall, heavy))
    height, height_refs, conflict = _aggregate(tall, heights)
    if height is None or not weights:
        lacking = [_label(f, (code,)) for code, ok in ((WEIGHT, weights), (HEIGHT, height)) if not ok]
        return None, [], _why(" and ".join(lacking) + (f" ({conflict})" if conflict else ""), ignored)
    series = [_Reading(r.at, r.value / height**2, r.ref) for r in weights]
    value, refs, why = _aggregate(f, series)
    if value is None:
        return None, [], f"{_what(f.name, (WEIGHT,))}: {why}"
    note = "computed: body weight (LOINC 29463-7) / latest body height (LOINC 8302-2) squared"
    return value, [note, *refs, *height_refs], ""


def _positive(readings: list[_Reading], ignored: Counter[str]) -> list[_Reading]:
    ignored["not above zero"] += sum(r.value <= 0 for r in readings)
    return [r for r in readings if r.value > 0]


def _age(patient: Mapping[str, Any], as_of: datetime) -> tuple[float | None, str]:
    raw = patient.get("birthDate")
    if raw is None:
        return None, "no Patient.birthDate"
    match = _DATE.fullmatch(raw) if isinstance(raw, str) else None
    try:
        if match is None:
            raise ValueError(raw)
        year, month = int(match[1]), int(match[2]) if match[2] else None
        first = date(year, month or 1, int(match[3]) if match[3] else 1)
        last_month = month or 12
        last = date(year, last_month, int(match[3]) if match[3] else calendar.monthrange(year, last_month)[1])
    except ValueError:
        return None, f"Patient.birthDate {raw!r} is not a FHIR date"
    today = as_of.date()
    if last > today:
        return None, f"Patient.birthDate {raw} is, or may be, after {today}"
    ages = {today.year - b.year - ((today.month, today.day) < (b.month, b.day)) for b in (first, last)}
    if len(ages) > 1:
        return None, f"Patient.birthDate {raw} is partial: on {today} the age is {min(ages)} or {max(ages)}"
    return float(ages.pop()), ""


def _sex(f: Feature, patient: Mapping[str, Any]) -> tuple[float | None, str]:
    gender = patient.get("gender")
    if gender in ("male", "female"):
        return float(gender == f.sex_value), ""
    if gender is None:
        return None, "no Patient.gender"
    return None, f"Patient.gender is {gender!r}: the model's column is {f.sex_value} or not, so it is not set"


def extract(
    spec: FeatureSpec, patient: dict[str, Any], resources: Iterable[dict[str, Any]], *, as_of: datetime
) -> Extracted:
    """Read ``spec``'s features for ``patient`` at ``as_of`` (timezone-aware) from ``resources``."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidInput("as_of must be timezone-aware")
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        raise InvalidInput("patient must be a FHIR Patient resource")
    by_type: dict[str, list[Mapping[str, Any]]] = {"Observation": [], "Condition": []}
    seen: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        if not isinstance(resource, Mapping):
            raise InvalidInput("resources must be FHIR resources (JSON objects)")
        if resource.get("resourceType") not in by_type:
            continue
        _check_subject(resource, patient)
        ref = _ref(resource)
        if not ref.endswith("/(no id)") and ref in seen:
            if seen[ref] != resource:
                raise InvalidInput(f"two different versions of {ref}")
            continue
        seen[ref] = resource
        by_type[resource["resourceType"]].append(resource)
    values: dict[str, float | None] = {}
    sources: dict[str, list[str]] = {}
    missing = []
    for f in spec.features:
        value, used, why = _feature(f, patient, by_type, as_of)
        values[f.name], sources[f.name] = value, used
        if value is None and f.required:
            missing.append(Missing(f.name, why))
    return Extracted(values, tuple(missing), sources)


def _check_subject(resource: Mapping[str, Any], patient: Mapping[str, Any]) -> None:
    reference = _dict(resource.get("subject")).get("reference")
    match = _PATIENT_REF.search(reference) if isinstance(reference, str) else None
    if match and match[1] != patient.get("id"):
        raise InvalidInput(f"{_ref(resource)} is about Patient/{match[1]}, not {_ref(patient)}")


def _feature(
    f: Feature, patient: Mapping[str, Any], by_type: Mapping[str, _Resources], as_of: datetime
) -> tuple[float | None, list[str], str]:
    if f.source in ("age", "sex"):
        value, why = _age(patient, as_of) if f.source == "age" else _sex(f, patient)
        return value, [_ref(patient)] if value is not None else [], why
    ignored: Counter[str] = Counter()
    resources = by_type["Observation" if f.source == "observation" else "Condition"]
    readings = _readings(f, resources, as_of, ignored)
    value, used, conflict = _aggregate(f, readings)
    if value is not None:
        return value, used, ""
    why = _why(_label(f), ignored) if conflict is None else f"{_what(f.name, f.codes)}: {conflict}"
    if _derives_bmi(f) and conflict is None:
        value, used, derived = _body_mass_index(f, resources, as_of)
        if value is not None:
            return value, used, ""
        why += f"; cannot compute it: {derived}"
    return None, [], why


def query_plan(spec: FeatureSpec) -> dict[str, str]:
    """CDS Hooks prefetch templates: ``patient``, and one search per resource type and code group."""
    plan = {"patient": "Patient/{{context.patientId}}"}
    groups: set[tuple[str, tuple[str, ...]]] = set()
    for f in spec.features:
        if f.source not in ("observation", "condition"):
            continue
        kind = "Observation" if f.source == "observation" else "Condition"
        codes = [*f.codes, *(p for c in f.codes for p in PANELS.get(c, ()))]
        if _derives_bmi(f):
            codes += [WEIGHT, HEIGHT]
        group = (kind, tuple(dict.fromkeys(codes)))
        if group in groups:
            continue
        groups.add(group)
        key = base = f"{kind.lower()}-{re.sub(r'[^A-Za-z0-9_-]+', '-', f.name)}"
        suffix = 1
        while key in plan:
            suffix += 1
            key = f"{base}-{suffix}"
        plan[key] = f"{kind}?patient={{{{context.patientId}}}}&code={','.join(group[1])}"
    return plan


def pseudonym(patient_id: str, *, key: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of the patient id under ``key``, as `PSEUDONYM_HEX` hex digits."""
    return hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def cohort_table(
    spec: FeatureSpec,
    cohort: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]],
    *,
    as_of: datetime,
    outcome: Feature | None,
    pseudonym_key: bytes,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """De-identified training rows, sorted by pseudonym, and a report of counts.

    Each row is ``pid`` (`pseudonym`) and the value of every feature, then the outcome, read at
    ``as_of`` as `extract` does; None where missing. No name, id or date leaves: ages over 89 are
    90 (Safe Harbor). For an outcome that happens after ``as_of``, build the label table at the
    later date with the same key and join the two on ``pid``. The report holds counts only.
    """
    if len(pseudonym_key) < 32:
        raise InvalidInput("the pseudonym key must be 32 bytes or more (RFC 2104: as long as the hash)")
    features = (*spec.features, *([outcome] if outcome is not None else []))
    table = FeatureSpec(features)
    if "pid" in table.names():
        raise InvalidInput("'pid' is the pseudonym column; no feature may be named so")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    empty: Counter[str] = Counter()
    capped = complete = 0
    for patient, resources in cohort:
        patient_id = patient.get("id") if isinstance(patient, Mapping) else None
        if not isinstance(patient_id, str) or not patient_id or patient_id in seen:
            raise InvalidInput("each patient in a cohort needs an id of its own, to be pseudonymised")
        seen.add(patient_id)
        extracted = extract(table, patient, resources, as_of=as_of)
        row: dict[str, Any] = {"pid": pseudonym(patient_id, key=pseudonym_key)}
        for f in features:
            value = extracted.values[f.name]
            if f.source == "age" and value is not None and value > AGE_CAP - 1:
                value, capped = AGE_CAP, capped + 1
            empty[f.name] += value is None
            row[f.name] = value
        complete += all(row[f.name] is not None for f in spec.features)
        rows.append(row)
    rows.sort(key=lambda r: cast(str, r["pid"]))
    report = {
        "rows": len(rows),
        "complete": complete,
        "missing": {name: empty[name] for name in table.names()},
        "ages_90_or_older": capped,
    }
    return rows, report


#: The `framingham` dataset's feature columns, read from a chart. The windows are our choice:
#: blood pressure and weight are taken at most visits, so 2 years; cholesterol 5 years, as the
#: ACC/AHA guideline assesses risk factors every 4 to 6 years in adults 20-79 (Goff et al. 2014,
#: Circulation 129(25 Suppl 2):S49-S73).
FRAMINGHAM = FeatureSpec(
    (
        Feature("num_sbp", "observation", (SYSTOLIC,), "mm[Hg]", window_days=730),
        Feature("num_dbp", "observation", (DIASTOLIC,), "mm[Hg]", window_days=730),
        Feature("num_scl", "observation", (CHOLESTEROL, CHOLESTEROL_MOLAR), "mg/dL", window_days=1826),
        Feature("num_age", "age"),
        Feature("num_bmi", "observation", (BMI,), "kg/m2", window_days=730),
        Feature("fac_sex=2", "sex", sex_value="female"),  # the dataset's level 2 is female
    )
)
