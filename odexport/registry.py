"""Named records of one kind (precisions, targets, runtimes, lowerings): registered once, listed in a
stable order, and found by name with an error that lists the choices."""

from __future__ import annotations

from typing import Generic, Iterator, Protocol, TypeVar

from .errors import InputError


class Named(Protocol):
    name: str


Record = TypeVar("Record", bound=Named)


class Registry(Generic[Record]):
    """kind: what the records are, as an error names them ("precision"). also: names the callers accept
    beside the records (a runtime choice may be "all"), listed in the error's hint. ordered_by_name: list
    by name rather than in registration order."""

    def __init__(self, kind: str, *, also: tuple[str, ...] = (), ordered_by_name: bool = False) -> None:
        self.kind = kind
        self.also = also
        self.ordered_by_name = ordered_by_name
        self._records: dict[str, Record] = {}

    def register(self, record: Record, *, once: bool = False) -> Record:
        """once: refuse a second record of the same name (a programming error, not a user's)."""
        if once and record.name in self._records:
            raise ValueError(f"{self.kind} {record.name!r} is registered twice")
        self._records[record.name] = record
        return record

    def unregister(self, name: str) -> None:
        """Forget a record (a test's own, registered for the test)."""
        self._records.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._records) if self.ordered_by_name else list(self._records)

    def get(self, name: str) -> Record:
        try:
            return self._records[name]
        except KeyError:
            choices = ", ".join([*self.names(), *self.also])
            raise InputError(f"unknown {self.kind} {name!r}", hint=f"choose one of: {choices}") from None

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._records
