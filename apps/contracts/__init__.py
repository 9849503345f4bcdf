"""The published language: every domain event's payload, one typed definition each.

The write side records these classes (apps.cqrs.log.record); projectors and subscribers receive
them back, read from the log (`DomainEvent.data`, apps/cqrs/events.py), with money as Decimal
and times as aware datetimes. It is the one module both sides import (pyproject.toml's import
contracts), and it imports neither.

Adding an event, or changing one's shape: docs/contracts.md.
"""
