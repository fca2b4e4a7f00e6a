"""The FHIR patient-record store: versioned, encrypted documents plus a search index."""
