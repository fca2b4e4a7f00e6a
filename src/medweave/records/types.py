"""The FHIR R4 resource types Medweave stores: the one list every other module reads."""

from __future__ import annotations

SUPPORTED_TYPES: tuple[str, ...] = (
    "Patient", "Practitioner", "PractitionerRole", "CareTeam", "Encounter", "Observation", "Condition",
    "Questionnaire", "QuestionnaireResponse", "Schedule", "Slot", "Appointment", "Consent",
    "DocumentReference", "ServiceRequest", "ImagingStudy", "Device", "Flag", "Task", "CarePlan", "AuditEvent",
)  # fmt: skip
