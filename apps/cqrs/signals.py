from django.dispatch import Signal

# Sent by record() inside the command's transaction, with `events` (the DomainEvent rows just
# appended) and `using` (their database alias). Receivers that cause effects outside the database
# must defer them with transaction.on_commit, as apps/cqrs/dispatch.py does.
event_recorded = Signal()
