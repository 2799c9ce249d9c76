"""The exception tree: one root and a few specific errors.

Each error's message is written for the operator: it says what is wrong and, where it can, what to do.
"""


class MailflowError(Exception):
    """Root of every error mailflow raises on purpose."""


class ConfigError(MailflowError):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


class NotFoundError(MailflowError):
    """An id or name given on the command line does not exist."""


class RegistryError(MailflowError):
    """A registry CSV file has bad rows; the message lists them with their line numbers."""


class StoreUnavailableError(MailflowError):
    """The database could not be reached or refused a write; intake answers 451 on this."""


class TransientDeliveryError(MailflowError):
    """Delivery failed in a way that may succeed later (4xx, connection refused, timeout)."""


class PermanentDeliveryError(MailflowError):
    """The receiving server refused the recipient for good (5xx at RCPT or DATA)."""


class SenderRefusedError(MailflowError):
    """The relay refused us as a sender (authentication, quota): the queue pauses and alerts."""


class DeliveryUncertainError(TransientDeliveryError):
    """The connection failed after the message data was sent; the mail may or may not have arrived."""
