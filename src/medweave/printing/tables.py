"""Tables of the print lab. Only the lab's services touch them (``printing.lab``, ``intake``,
``designs``, ``service``).

They hold workflow state and identifiers, never clinical content: the request itself is a FHIR
ServiceRequest, the study an ImagingStudy, each export a Device and a DocumentReference on the
patient's (encrypted) record. ``print_requests`` mirrors each request's id, patient, kind and
status so that the lab's worklist is one indexed query; ``print_inputs`` names the studies and
scans attached to a request (their bytes are files sealed under the patient's key);
``print_designs`` is one design iteration: its parameters, job, progress, check report, files and
the clinician's decision.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

print_requests = Table(
    "print_requests",
    metadata,
    Column("id", String(64), primary_key=True),  # the ServiceRequest id
    Column("patient_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # model, implant, splint
    Column("status", String(16), nullable=False),  # active, completed, revoked
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
)
Index("ix_print_requests_status", print_requests.c.status, print_requests.c.created_at)

print_inputs = Table(
    "print_inputs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # study (DICOM or NIfTI) or scan (a surface mesh)
    Column("name", String(200), nullable=False),  # the sealed file under DATA_DIR/print
    Column("imaging_study_id", String(64), nullable=True),
    Column("summary", Text, nullable=False),  # JSON: modality, shape, spacing, UIDs, notes
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
)
Index("ix_print_inputs_request", print_inputs.c.request_id, print_inputs.c.created_at)

print_designs = Table(
    "print_designs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("input_id", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("iteration", Integer, nullable=False),
    Column(
        "status", String(16), nullable=False
    ),  # queued, running, ready, failed, cancelled, approved, rejected
    Column("params", Text, nullable=False),
    Column("job_id", String(64), nullable=True),
    Column("summary", Text, nullable=True),  # JSON: triangles, volume, steps, seconds
    Column("report", Text, nullable=True),  # JSON: the print-readiness report
    Column("files", Text, nullable=True),  # JSON: [{format, name, sha256, bytes, document}]
    Column("device_id", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decided_by", String(80), nullable=True),
    Column("decision_reason", Text, nullable=True),
    UniqueConstraint("request_id", "iteration", name="uq_print_designs_iteration"),
)
Index("ix_print_designs_request", print_designs.c.request_id, print_designs.c.iteration)
