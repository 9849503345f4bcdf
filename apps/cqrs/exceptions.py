class Conflict(Exception):
    """The command is well-formed but the current state refuses it (HTTP 409): not enough stock,
    an illegal state transition, a duplicate."""
