"""Consent: message requests and blocks (who may reach whom)."""
