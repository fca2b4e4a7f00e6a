"""Shared security services: envelope encryption, passwords, TOTP, SMART scopes and access tokens."""
