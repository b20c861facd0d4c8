"""One switch for the reference path: scipy's own filters on the whole grid.

The speed work replaced scipy's morphology and median filter by whole-array equivalents
(``stages.morphology``, ``stages.anomaly.median3_inplane``) and runs the 3D stages on the
brain's box (``stages.crop``). Each is meant to give scipy's result on the whole grid,
voxel for voxel. With the switch on, the pipeline runs that reference instead, so that
anyone changing a stage can check the fast path against it (``tests/stages/
test_reference.py`` does, at the default settings and at other radii).

On: ``PipelineConfig.reference_path`` (the segmenter turns it on for its own stages), or
``BRATS_GOAT_REFERENCE_PATH=1`` in the environment (the CLI, the container). A process-wide
switch, read by every thread of a case; it costs about twice the time of the 3D stages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Set to 1 to run the reference path.
REFERENCE_ENV = "BRATS_GOAT_REFERENCE_PATH"

#: Blocks inside ``reference_path(True)`` now, over every thread: a count, not a saved
#: value, so that the read thread's normalisation and the main thread's stages, which
#: enter and leave in any order, never switch each other off.
_active = 0
_lock = threading.Lock()


def reference_on() -> bool:
    """Whether the reference path runs now: inside ``reference_path``, or by the
    environment."""
    return _active > 0 or os.environ.get(REFERENCE_ENV, "").strip() == "1"


@contextmanager
def reference_path(enabled: bool = True) -> Iterator[None]:
    """Run the reference path inside the block; ``enabled=False`` changes nothing (an
    outer block, or the environment, stays in force)."""
    global _active
    if not enabled:
        yield
        return
    with _lock:
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
