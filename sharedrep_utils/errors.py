"""The error a person sees for bad input: below every other module, so any of them can raise it."""


class ConfigError(ValueError):
    """A parameter is wrong; the message is one sentence meant for a person."""
