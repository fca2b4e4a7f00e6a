"""Shared security services: key material and envelope encryption."""
