"""Metered usage against the plan's quotas: emails sent, job steps run."""
