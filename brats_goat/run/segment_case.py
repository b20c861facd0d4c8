"""One case from its files to labels on its own grid, in memory: the path ``predict`` runs
for every case (``brats_goat.run.case``) and the library's way in (``brats_goat.segment_case``).

Reading leaves out a missing or undecodable sequence (with a warning) as long as t2f or t1c
is there, and puts a case off the model's grid (not 1 mm, or wider than 240 x 240) on a
1 mm frame (``brats_goat.io.resample``); its labels go back to the input's grid, so the
labels here are array-equal to the file ``predict`` writes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.io.discover import Case, discover_cases
from brats_goat.io.read import CaseError, CaseVolumes, load_case
from brats_goat.io.resample import to_model_frame
from brats_goat.io.write import as_label_map, like_reference
from brats_goat.segmenter import Normalised, PipelineConfig, Segmentation, Segmenter
from brats_goat.timing import Stage, StageTimer


def read_case(case: Case, affine_atol: float) -> CaseVolumes:
    """The read stage: the case's images, checked, on the model's frame (another grid is
    resampled; its outputs go back to its own)."""
    volumes = load_case(case, affine_atol, allow_missing=True, skip_corrupt=True)
    return to_model_frame(volumes)


@dataclass
class SegmentedCase:
    """A case segmented in memory: its labels on the input's grid, and how it got them.

    ``volumes`` and ``segmentation`` are on the grid the pipeline ran on (the model's frame
    for a resampled case; the images are gone once normalised unless kept); ``labels`` and
    ``map_image`` are on the input's grid, in its storage order, as ``predict`` writes them.
    """

    volumes: CaseVolumes
    segmentation: Segmentation
    #: What the segmentation says about the case (``predict``'s report puts them after the
    #: read's, ``volumes.warnings``).
    notes: list[str] = field(default_factory=list)

    @property
    def case_id(self) -> str:
        return self.volumes.case_id

    @property
    def warnings(self) -> list[str]:
        """Every warning about the case: the read's, then the segmentation's."""
        return [*self.volumes.warnings, *self.notes]

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """0 background, 1 NETC, 2 SNFH, 3 ET on the input's grid, in its storage order: the
        array a NIfTI reader gives for the label map ``predict`` writes."""
        return self.volumes.to_stored(self.segmentation.labels)

    def label_image(self) -> nib.Nifti1Image:
        """``labels`` as the uint8 label map ``predict`` writes, with the input's header."""
        return as_label_map(like_reference(self.labels, self.volumes.reference, np.uint8))

    def map_image(self, name: str) -> nib.Nifti1Image:
        """The float32 anomaly map of channel ``name`` (t1c, t2f) with the input's header."""
        anomaly = self.volumes.to_stored(self.segmentation.maps[name])
        return like_reference(anomaly, self.volumes.reference, np.float32)


def as_case(case: Case | str | os.PathLike[str]) -> Case:
    """``case`` itself, or the one case in a folder (``discover_cases``)."""
    if isinstance(case, Case):
        return case
    found = discover_cases(Path(case))
    if len(found) != 1:
        raise CaseError(
            f"{case} holds {len(found)} cases, not one: pass a case folder, or one of "
            "discover_cases() of it"
        )
    return found[0]


def segment_case(
    case: Case | str | os.PathLike[str],
    segmenter: Segmenter,
    *,
    keep_images: bool = True,
    timer: StageTimer | None = None,
    reading: Callable[[], CaseVolumes] | None = None,
    prepared: Callable[[], Normalised] | None = None,
    on_read: Callable[[CaseVolumes], None] | None = None,
) -> SegmentedCase:
    """Read ``case`` (a ``Case`` or its folder) and segment it as ``predict`` does.

    Raises ``CaseError`` for a case that cannot be segmented. ``keep_images=False`` frees
    the images once normalised (144 MB less at a case's peak). The rest serves the folder
    runner: ``timer`` times the stages, ``reading`` and ``prepared`` give the case already
    read and normalised on a helper thread, and ``on_read`` sees the case as read, before
    the segmentation can fail.
    """
    timer = timer or StageTimer()
    with timer.stage(Stage.READ):
        volumes = reading() if reading else read_case(as_case(case), segmenter.config.affine_atol)
    if not keep_images:  # nothing after the normalisation needs the images
        timer.after[Stage.NORMALISE] = volumes.release_images
    if on_read is not None:
        on_read(volumes)
    seg = segmenter.segment(volumes, timer, prepared)
    return SegmentedCase(volumes, seg, segmentation_notes(seg, volumes.present, segmenter))


def segmentation_notes(
    seg: Segmentation, present: tuple[str, ...], segmenter: Segmenter
) -> list[str]:
    """The segmentation's warnings, and what its labels say about the case: nothing found,
    nothing more abnormal than healthy brains, or a component rule the weights cannot
    serve."""
    config = segmenter.config
    notes = list(seg.warnings)
    if not seg.labels.any():
        notes.append("no anomaly found: the label map is all zero")
    elif (flag := abnormality_flag(seg, config)) is not None:
        notes.append(flag)
    peaks = segmenter.peak_thresholds(present)
    if config.component_rule != "largest" and all(v is None for v in peaks.values()):
        notes.append(
            f"--components {config.component_rule}: these weights carry no "
            f"peak values for {'+'.join(present)}; kept the largest component only"
        )
    return notes


def abnormality_flag(seg: Segmentation, config: PipelineConfig) -> str | None:
    """A warning when the labels' whole tumour is not as abnormal as a tumour: the component
    rule labels something in every case, a tumour-free one too. Below
    ``healthy_abnormality`` (t2f) the case is within healthy variation; below
    ``tumour_abnormality`` it is within the range of small non-tumour lesions."""
    value = seg.abnormality.get("t2f")
    if value is None or value >= config.tumour_abnormality:
        return None
    if value < config.healthy_abnormality:
        return (
            f"t2f abnormality {value:.2f} is below {config.healthy_abnormality:g}: this "
            "case's residual is within the variation of healthy brains, so its labels may "
            'mark no tumour (docs/cli.md, "abnormality")'
        )
    return (
        f"t2f abnormality {value:.2f} is below {config.tumour_abnormality:g}: abnormal, but "
        "within the range of small non-tumour lesions (white-matter lesions) and below "
        "every tumour measured, so its labels may mark such a lesion and no tumour "
        '(docs/cli.md, "abnormality")'
    )
