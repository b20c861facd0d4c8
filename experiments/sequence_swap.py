"""Issue 27: does ``brats_goat.io.sequences.swap_score`` tell swapped t1c/t2f files apart?

Reads every four-sequence case of the given folders with the library's ``load_case`` and
prints the score as read and with the t1c and t2f arrays exchanged.

    python -m experiments.sequence_swap ../shared/data/brats18-dev ../shared/data/real \
        ../shared/data/healthy-real
"""

from __future__ import annotations

import sys
from pathlib import Path

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.io.sequences import SWAP_MARGIN, swap_score


def main(argv: list[str] | None = None) -> int:
    print("| case | as read | t1c and t2f swapped |\n|---|---|---|")
    flagged = normal = swapped = 0
    for root in argv or sys.argv[1:]:
        for case in discover_cases(Path(root)):
            arrays = load_case(case, allow_missing=True).arrays
            score = swap_score(arrays)
            if score is None:
                continue
            exchanged = swap_score({**arrays, "t1c": arrays["t2f"], "t2f": arrays["t1c"]})
            assert exchanged is not None
            normal += 1
            flagged += score < SWAP_MARGIN
            swapped += exchanged < SWAP_MARGIN
            print(f"| {case.case_id} | {score:.2f} | {exchanged:.2f} |")
    print(f"\nwarned: {flagged} of {normal} as read, {swapped} of {normal} swapped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
