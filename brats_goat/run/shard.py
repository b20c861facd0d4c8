"""``--shard K/N``: split one test set over N independent runs with no coordinator.

The rule: sort the discovered cases by case ID (plain string order); the case at 0-based
position ``i`` in that order belongs to shard ``(i mod N) + 1``. Round-robin instead of
contiguous blocks so that cohorts whose IDs sort together (GLI, MEN, MET, ...) are spread
over all shards and the shards finish at about the same time. Every run that sees the same
input listing computes the same split, so N containers (a Kubernetes indexed Job, a Slurm
array) each take their part, the parts are disjoint, and together they cover every case.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: Most shards one run may be split into: far more than any cluster runs side by side (a
#: Slurm array's default limit is 1001), and few enough that ``merge-reports`` can list
#: the shards it misses. A larger N is a typo, refused before anything runs.
MAX_SHARDS = 10_000
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
#: Report of one shard, so that shards writing into one OUTPUT do not overwrite each other.
SHARD_REPORT_GLOB = "report-shard-*-of-*.json"
_SHARD_REPORT = re.compile(r"^report-shard-(\d+)-of-(\d+)\.json$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shard count must be at least 1, got {self.count}")
        if self.count > MAX_SHARDS:
            raise ValueError(
                f"shard count N must be at most {MAX_SHARDS}, got {self.count}: split the "
                f"cases into at most {MAX_SHARDS} shards"
            )
        if not 1 <= self.index <= self.count:
            raise ValueError(
                f"shard index must be between 1 and {self.count} (K is 1-based), got {self.index}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def report_name(self) -> str:
        return f"report-shard-{self.index}-of-{self.count}.json"

    def to_dict(self, cases_total: int) -> dict[str, Any]:
        """What a shard report records: which part it is and how many cases all parts share."""
        return {"index": self.index, "count": self.count, "cases_total": cases_total}


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)``; a clear ``ValueError`` for anything else."""
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"expected K/N (e.g. 2/4, shard K of N, K from 1 to N), got {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_of_report_name(name: str) -> Shard | None:
    """``report-shard-2-of-4.json`` -> ``Shard(2, 4)``; ``None`` for any other file name."""
    match = _SHARD_REPORT.match(name)
    if not match:
        return None
    try:
        return Shard(int(match.group(1)), int(match.group(2)))
    except ValueError:
        return None


def select_shard(
    items: Sequence[T],
    shard: Shard | None,
    key: Callable[[T], str] = operator.attrgetter("case_id"),
) -> list[T]:
    """The items of ``shard`` (all of them for ``None``), in sorted-ID order."""
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    return [item for i, item in enumerate(ordered) if i % shard.count == shard.index - 1]
