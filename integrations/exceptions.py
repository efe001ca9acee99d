"""Errors raised by integration clients. Vendor exceptions (requests, pynetbox, atlassian) never leak past
``integrations/``: clients translate them into these, with a message an operator can act on."""


class IntegrationError(Exception):
    """An outbound system failed or answered something we cannot use."""


class IntegrationNotConfigured(IntegrationError):
    """A required URL or credential is missing."""


class NetboxError(IntegrationError):
    """NetBox failed or answered something we cannot use."""


class NetboxAuthError(NetboxError):
    """NetBox rejected the token (401/403)."""


class NetboxUnavailable(NetboxError):
    """NetBox could not be reached, timed out, or kept failing after retries."""


class NetboxInconsistentData(NetboxError):
    """A listing changed during the walk (ids fetched differ from ``count``) or a page was malformed."""
