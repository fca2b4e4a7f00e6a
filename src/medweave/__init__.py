"""Medweave: a self-hostable health platform around one FHIR patient record."""

__version__ = "0.1.0"
