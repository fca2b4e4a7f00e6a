"""HTTP entry points: the FHIR REST API (and, later, pages, signaling and CDS Hooks)."""
