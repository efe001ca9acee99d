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


class LlmError(IntegrationError):
    """The chat-completions provider failed or answered something we cannot use."""


class LlmAuthError(LlmError):
    """The provider rejected the API key (401/403)."""


class LlmUnavailable(LlmError):
    """The provider could not be reached or failed (connection error, 5xx)."""


class LlmRateLimited(LlmUnavailable):
    """The provider answered 429: too many requests or the quota is used up."""


class LlmTimeout(LlmUnavailable):
    """The provider did not answer within the timeout."""


class LlmBadResponse(LlmError):
    """The provider's answer was malformed (not JSON, or not a chat completion) or refused the request (4xx)."""


class ConfluenceError(IntegrationError):
    """Confluence failed or answered something we cannot use."""


class ConfluenceAuthError(ConfluenceError):
    """Confluence rejected the credentials (401/403)."""


class ConfluenceNotFound(ConfluenceError):
    """The page (or attachment) does not exist, or the account may not see it (404)."""


class ConfluenceConflict(ConfluenceError):
    """The page changed while we updated it, twice in a row (409)."""


class ConfluenceUnavailable(ConfluenceError):
    """Confluence could not be reached, timed out, or kept failing (429/5xx) after retries."""


class BackupError(IntegrationError):
    """A backup could not be written, verified or pruned."""


class DirectoryError(IntegrationError):
    """A sign-in directory (LDAP, OpenID Connect provider) failed or answered something we cannot use."""


class DirectoryUnavailable(DirectoryError):
    """The directory could not be reached, refused the service account, or failed during a search."""
