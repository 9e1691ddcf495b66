"""sharedrep-kit: SharedRep-RLHF vs MaxMin-RLHF on Anthropic HH, from notebooks over a tested package."""

__version__ = "0.1.0"
