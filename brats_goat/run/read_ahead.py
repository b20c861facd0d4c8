"""The next case read and normalised on a helper thread while the current one is segmented."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from brats_goat.io.discover import Case
from brats_goat.io.read import CaseVolumes
from brats_goat.parallel import helper_pool
from brats_goat.run.segment_case import read_case
from brats_goat.segmenter import Normalised, Segmenter
from brats_goat.timing import Stage


class ReadAhead:
    """Cases read and normalised on a helper thread ahead of the one being segmented
    (issue 18).

    Reading is mostly gzip and numpy, normalising numpy and scipy.ndimage: both leave the
    GIL, and fill a core that the 3D stages after the reconstruction leave idle. The next
    case is read once the current one's reconstruction has ended (during it, torch's two
    threads need both cores: a read beside them slowed it by more than the read took), and
    normalised once the last stage that needs both cores has ended: the reconstruction, or
    SAM's refinement where it runs (beside it, the normalisation also raised the peak
    memory). The first case is read while the segmenter is built (weights, the OpenVINO
    export) and normalised by the run itself. At most one extra case is in memory.
    """

    def __init__(self, cases: list[Case], affine_atol: float) -> None:
        self.cases, self.atol = cases, affine_atol
        self.pool = helper_pool(1, "brats-goat-read")
        self.reads: dict[int, Future[CaseVolumes]] = {}
        self.norms: dict[int, Future[Normalised]] = {}

    def start(self, index: int) -> None:
        """Start reading case ``index`` (0-based) unless it is started or there is none."""
        if index < len(self.cases) and index not in self.reads:
            self.reads[index] = self.pool.submit(read_case, self.cases[index], self.atol)

    def normalise(self, index: int, segmenter: Segmenter) -> None:
        """Normalise case ``index`` once it is read (the pool's one thread runs its jobs in
        order), unless it is not being read or is already normalised."""
        read = self.reads.get(index)
        if read is not None and index not in self.norms:
            self.norms[index] = self.pool.submit(lambda: segmenter.normalise(read.result()))

    def after_stages(self, index: int, segmenter: Segmenter) -> dict[Stage, Callable[[], object]]:
        """What to start for case ``index`` as the current case's stages end
        (``StageTimer``'s ``after``): its read, then its normalisation."""

        def read() -> None:
            self.start(index)

        def normalise() -> None:
            self.normalise(index, segmenter)

        if segmenter.refiner is None:

            def both() -> None:
                read()
                normalise()

            return {Stage.RECONSTRUCT: both}
        return {Stage.RECONSTRUCT: read, Stage.REFINE: normalise}

    def take(self, index: int) -> tuple[Future[CaseVolumes], Future[Normalised] | None]:
        """Case ``index``'s read, started now if it was not, and its normalisation if it
        was started (None: the case is normalised when it runs); both go with the case."""
        self.start(index)
        return self.reads.pop(index), self.norms.pop(index, None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
