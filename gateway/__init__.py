"""Telephony and SMS gateway of a police citizen-service centre."""

__version__ = "0.1.0"
