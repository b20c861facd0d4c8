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
from collections.abc import Iterator
from contextlib import contextmanager

#: Set to 1 to run the reference path.
REFERENCE_ENV = "BRATS_GOAT_REFERENCE_PATH"

_forced: bool | None = None


def reference_on() -> bool:
    """Whether the reference path runs now (``reference_path``, else the environment)."""
    if _forced is not None:
        return _forced
    return os.environ.get(REFERENCE_ENV, "").strip() == "1"


@contextmanager
def reference_path(enabled: bool = True) -> Iterator[None]:
    """Run the reference path (or not) inside the block, whatever the environment says;
    ``enabled=False`` inside an outer block leaves the outer choice in force."""
    global _forced
    before = _forced
    if enabled:
        _forced = True
    try:
        yield
    finally:
        _forced = before
