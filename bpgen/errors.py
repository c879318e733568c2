"""The one exception bpgen raises for user mistakes."""


class BpgenError(ValueError):
    """A mistake in what the user declared, explained in one line (symbol, op, shape or file)."""
