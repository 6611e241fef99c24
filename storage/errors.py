"""Exceptions of the storage layer. Adapters translate vendor exceptions into these."""


class StorageError(Exception):
    """Base class of every storage-layer error."""


class StoreUnavailable(StorageError):
    """A store cannot be reached right now; the caller may retry later."""

    def __init__(self, store: str, reason: str = "") -> None:
        super().__init__(f"{store} unavailable: {reason}" if reason else f"{store} unavailable")
        self.store = store
        self.reason = reason
