"""The run loop's root error: bad scenarios, parts that fail to start, runs that cannot finish."""


class RunError(Exception):
    """A patrol run cannot start or go on; the message names what is wrong."""
