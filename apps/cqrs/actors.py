"""Who acts when no person does: the shop itself, under a name of its own.

A system actor has exactly the rights it is given, and the log names it (`system:<name>`), so
the audit trail tells which process did what. Command services that check rights accept a user
or a system actor; none of them treats a missing actor as staff."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SystemActor:
    name: str
    rights: frozenset[str] = frozenset()

    # What the scope and the services read from a user.
    pk = None
    is_authenticated = False
    is_staff = False

    def get_username(self) -> str:
        return f"system:{self.name}"

    def can(self, right: str) -> bool:
        return right in self.rights

    def __str__(self) -> str:
        return self.get_username()
