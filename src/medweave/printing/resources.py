"""The FHIR resources the print lab writes on a patient's record (pure builders, no I/O).

- ``ServiceRequest``: a clinician's print request (a part for a patient).
- ``ImagingStudy``: a study pulled from the PACS or uploaded for the request, by its DICOM UIDs
  (http://hl7.org/fhir/R4/imagingstudy.html; identifiers as ``urn:oid:`` per
  http://hl7.org/fhir/R4/imagingstudy-definitions.html#ImagingStudy.identifier).
- ``Device``: the patient-specific device a design iteration produced, with every design
  parameter as a property, its iteration as its version and its source study and series, so that
  a part can be traced from scan to file (FDA, "Technical Considerations for Additive
  Manufactured Medical Devices", 2017, V.B and VI.A).
- ``DocumentReference``: each exported file, with its SHA-256 and size, related to the Device and
  the ImagingStudy. These writes are audited, and the ledger commits to them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

KIND_SYSTEM = "https://medweave.org/fhir/CodeSystem/print-kind"
DEVICE_ID_SYSTEM = "https://medweave.org/fhir/NamingSystem/print-device"
SHA256_SYSTEM = "https://medweave.org/fhir/NamingSystem/sha256"
SOURCE_SERIES_URL = "https://medweave.org/fhir/StructureDefinition/source-series"
DCM = "http://dicom.nema.org/resources/ontology/DCM"

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
KINDS: dict[str, str] = {
    "model": "Patient-specific anatomical model",
    "implant": "Patient-specific cranial implant",
    "splint": "Patient-specific wrist orthosis",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def service_request(*, patient_id: str, requester: str | None, kind: str, note: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"text": "3D printing"}],
        "code": {
            "coding": [{"system": KIND_SYSTEM, "code": kind, "display": KINDS[kind]}],
            "text": KINDS[kind],
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": _now(),
    }
    if requester:
        body["requester"] = {"reference": requester}
    if note.strip():
        body["note"] = [{"text": note.strip()}]
    return body


def imaging_study(*, patient_id: str, source: Any, request_id: str) -> dict[str, Any]:
    """From a volume's :class:`~medweave.printing.volume.SourceInfo`."""
    series: dict[str, Any] = {
        "uid": source.series_uid,
        "modality": {"system": DCM, "code": source.modality or "OT"},
        "numberOfInstances": len(source.sop_instance_uids),
    }
    sop_class = getattr(source, "sop_class_uid", "")
    if source.sop_instance_uids and sop_class:
        series["instance"] = [
            {"uid": uid, "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"}}
            for uid in source.sop_instance_uids
        ]
    body: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "subject": {"reference": f"Patient/{patient_id}"},
        "basedOn": [{"reference": f"ServiceRequest/{request_id}"}],
        "numberOfSeries": 1,
        "numberOfInstances": len(source.sop_instance_uids),
        "series": [series],
    }
    if source.study_uid:
        body["identifier"] = [{"system": "urn:dicom:uid", "value": f"urn:oid:{source.study_uid}"}]
    return body


def _property(name: str, value: Any) -> dict[str, Any] | None:
    if value == "":
        return None
    prop: dict[str, Any] = {"type": {"text": name}}
    if isinstance(value, bool) or value is None:
        prop["valueCode"] = [{"text": str(value).lower()}]
    elif isinstance(value, int | float):
        unit = (
            "mm" if name.endswith("_mm") else ("[hnsf'U]" if name.endswith("_hu") or name == "iso" else "1")
        )
        prop["valueQuantity"] = [
            {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        ]
    elif isinstance(value, str):
        prop["valueCode"] = [{"text": value}]
    else:
        return None
    return prop


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested design parameters as ``a.b`` names with scalar values (lists joined)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value) if value else ""
        else:
            out[name] = value
    return out


def device(
    *,
    patient_id: str,
    kind: str,
    identifier: str,
    iteration: int,
    params: dict[str, Any],
    imaging_study_id: str | None,
    series_uid: str | None,
    request_id: str,
) -> dict[str, Any]:
    props = [p for name, v in sorted(flat_params(params).items()) if (p := _property(name, v)) is not None]
    body: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": identifier}],
        "status": "inactive",  # active once a clinician approves the design
        "deviceName": [{"name": f"{KINDS[kind]}, iteration {iteration}", "type": "user-friendly-name"}],
        "type": {
            "coding": [{"system": KIND_SYSTEM, "code": kind, "display": KINDS[kind]}],
            "text": KINDS[kind],
        },
        "version": [{"value": str(iteration)}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "property": props,
        "note": [{"text": f"Made for ServiceRequest/{request_id}"}],
    }
    extensions = []
    if imaging_study_id:
        extensions.append(
            {"url": SOURCE_SERIES_URL, "valueReference": {"reference": f"ImagingStudy/{imaging_study_id}"}}
        )
    if series_uid and _OID.fullmatch(series_uid):  # FHIR's oid type: no leading zeros in a part
        extensions.append({"url": f"{SOURCE_SERIES_URL}-uid", "valueOid": f"urn:oid:{series_uid}"})
    if extensions:
        body["extension"] = extensions
    return body


def document_reference(
    *,
    patient_id: str,
    device_id: str,
    imaging_study_id: str | None,
    fmt: str,
    url: str,
    sha256: str,
    size: int,
    title: str,
) -> dict[str, Any]:
    related = [{"reference": f"Device/{device_id}"}]
    if imaging_study_id:
        related.append({"reference": f"ImagingStudy/{imaging_study_id}"})
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "identifier": [{"system": SHA256_SYSTEM, "value": sha256}],
        "type": {"text": "3D print file"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": _now(),
        "description": title,
        "content": [
            {
                "attachment": {
                    "contentType": "model/3mf" if fmt == "3mf" else "model/stl",
                    "url": url,
                    "size": size,
                    "title": title,
                }
            }
        ],
        "context": {"related": related},
    }
