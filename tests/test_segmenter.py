"""The intensity baseline, the ET minimum and the component rules, end to end through the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from click.testing import CliRunner
from scipy import ndimage

from brats_goat.cli.main import main
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.segmenter import PipelineConfig, intensity_baseline, make_segmenter
from brats_goat.stages.labels import LabelsConfig
from tests.conftest import synthetic_volumes


def run(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_intensity_baseline_finds_bright_lesion(tmp_path: Path, case_writer) -> None:
    folder = case_writer("LES-1")
    out = tmp_path / "out"
    result = run(["predict", folder, out, "--method", "intensity", "--quiet"])
    assert result.exit_code == 0, result.output
    _, lesion = synthetic_volumes()
    pred = np.asarray(nib.load(out / "LES-1.nii.gz").dataobj)
    wt = pred > 0
    dice = 2 * (wt & lesion).sum() / (wt.sum() + lesion.sum())
    assert dice > 0.7, dice
    assert (pred[lesion] == 3).mean() > 0.5, "bright t1c lesion should be mostly ET"
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "intensity" and report["weights"] is None


def test_et_minimum_removes_an_enhancing_component_no_larger_than_it(case_writer) -> None:
    """The calibrated ET minimum drops a t1c component of at most that many voxels and
    leaves the whole tumour alone; 0 (checkpoints calibrated before it) drops nothing. It
    belongs to the method's own t1c channel (the ``channel`` ET rule)."""
    (case,) = discover_cases(case_writer("ET-1"))
    volumes = load_case(case)

    def segment(et_min: int) -> np.ndarray:
        base = PipelineConfig().intensity
        gated = {key: et_min for key in base.et_min_voxels_by_subset}
        post = dataclasses.replace(base, et_min_voxels_by_subset=gated)
        config = PipelineConfig(intensity=post, labels=LabelsConfig(et_rule="channel"))
        seg = make_segmenter("intensity", None, config)
        return seg.segment(volumes).labels

    free, gated = segment(0), segment(10**6)
    assert (free == 3).sum() > 100 and not (gated == 3).any()
    np.testing.assert_array_equal(free > 0, gated > 0)


def test_intensity_baseline_quiet_on_healthy(tmp_path: Path, case_writer) -> None:
    folder = case_writer("HEALTHY-1", lesion=False)
    out = tmp_path / "out"
    assert run(["predict", folder, out, "--method", "intensity", "--quiet"]).exit_code == 0
    assert (np.asarray(nib.load(out / "HEALTHY-1.nii.gz").dataobj) > 0).sum() < 50


def test_component_rule_largest_plus_peaks_keeps_a_second_lesion(
    tmp_path: Path, case_writer
) -> None:
    """Two bright FLAIR lesions: the paper's rule keeps one; ``largest+peaks`` keeps both,
    because the second is brighter than any healthy-calibration component. The shipped
    baseline's FLAIR peak is the z clip (real healthy tissue reached it), so this uses a
    post-processing with a peak below it, as a site's own calibration may give."""
    folder = case_writer("TWO-1")
    flair_path = folder / "TWO-1-t2f.nii.gz"
    img = nib.load(flair_path)
    data = np.asarray(img.dataobj).astype(np.int16)
    grid = np.indices(data.shape)
    centre = (np.array(data.shape) - 1) / 2 + np.array([-8, 8, 0])
    second = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= 4**2
    data[second] = 950
    nib.save(nib.Nifti1Image(data, img.affine, img.header), flair_path)
    volumes = load_case(discover_cases(folder)[0])
    base = intensity_baseline()
    peaks = {key: (5.0, 2.56) for key in ("t1c+t1n+t2f+t2w", "t1c+t2f")}
    post = dataclasses.replace(base, peak_thresholds_by_subset=peaks)

    def wt_components(rule: str) -> int:
        config = PipelineConfig(intensity=post, component_rule=rule)
        wt = make_segmenter("intensity", config=config).segment(volumes).labels > 0
        return int(ndimage.label(wt, structure=np.ones((3, 3, 3)))[1])

    assert (wt_components("largest"), wt_components("largest+peaks")) == (1, 2)
    shipped = PipelineConfig(component_rule="largest+peaks")
    wt = make_segmenter("intensity", config=shipped).segment(volumes).labels > 0
    assert int(ndimage.label(wt, structure=np.ones((3, 3, 3)))[1]) == 1


def test_peak_rule_without_calibrated_peaks_warns(
    tmp_path: Path, case_writer, tiny_weights
) -> None:
    """Weights without peak values cannot apply the rule: the report says so per case."""
    folder = case_writer("NOPEAK-1")
    out = tmp_path / "out"
    args = ["predict", folder, out, "--weights", tiny_weights, "--components", "largest+peaks"]
    assert run([*args, "-q", "--refine", "none"]).exit_code == 0
    case = json.loads((out / "report.json").read_text())["cases"][0]
    assert any("no peak values" in w for w in case["warnings"]), case["warnings"]


def test_enhancement_is_found_near_the_tumour_when_a_larger_bright_t1c_structure_is_elsewhere(
    case_writer,
) -> None:
    """A bright healthy t1c structure larger than the tumour's enhancement (a vessel, the
    choroid plexus) wins the paper's largest-component rule and costs the case its ET; the
    near-tumour rule keeps the tumour's ET and ignores the structure."""
    folder = case_writer("VESSEL-1")
    path = folder / "VESSEL-1-t1c.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.int16)
    shape = data.shape
    grid = np.indices(shape)
    far = ((grid - np.array([12, 32, 9.5])[:, None, None, None]) ** 2).sum(0) <= 6.5**2
    far &= data > 0
    data[far] = 1300
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    (case,) = discover_cases(folder)
    volumes = load_case(case)
    _, lesion = synthetic_volumes()
    assert far.sum() > lesion.sum()

    def labels(rule: str) -> np.ndarray:
        config = PipelineConfig(labels=LabelsConfig(et_rule=rule))
        return make_segmenter("intensity", None, config).segment(volumes).labels

    channel, near = labels("channel"), labels("near-wt")
    assert not (channel == 3).any()
    assert (near[lesion] == 3).mean() > 0.5 and not (near[far] == 3).any()
    np.testing.assert_array_equal(channel > 0, near > 0)


def test_segment_thresholds_only_the_channels_its_labels_and_refinement_read(
    case_writer, monkeypatch
) -> None:
    """Under the default ``near-wt`` ET rule the labels never read t1c's own binary mask, so
    ``segment`` leaves that map unthresholded, with the labels of thresholding both; the
    ``channel`` rule and a refinement of t1c threshold it."""
    from brats_goat.segmenter import Segmenter
    from brats_goat.stages.refine_config import RefineConfig

    (case,) = discover_cases(case_writer("CH-1"))
    volumes = load_case(case)
    base = PipelineConfig().intensity
    free = dataclasses.replace(base, et_min_voxels_by_subset={})  # keep every t1c component
    seg = make_segmenter("intensity", None, PipelineConfig(intensity=free))
    assert seg.channels_used() == ("t2f",)
    thresholded: list[tuple[str, ...]] = []
    real_threshold = Segmenter.threshold

    def threshold(self, maps, mask, present, channels=("t1c", "t2f"), normalised=None):
        thresholded.append(tuple(name for name in maps if name in channels))
        return real_threshold(self, maps, mask, present, channels, normalised)

    monkeypatch.setattr(Segmenter, "threshold", threshold)
    labels = seg.segment(volumes).labels
    cand = seg.candidates(volumes)  # both channels, as the experiments read them
    assert thresholded == [("t2f",), ("t1c", "t2f")] and cand.binary["t1c"].any()
    np.testing.assert_array_equal(labels, seg.labels(cand.binary, cand, volumes.present))
    channel = make_segmenter(
        "intensity", None, PipelineConfig(labels=LabelsConfig(et_rule="channel"))
    )
    assert channel.channels_used() == ("t1c", "t2f")
    refined = make_segmenter(
        "intensity", None, PipelineConfig(refine=RefineConfig(channels=("t2f", "t1c")))
    )
    refined.refiner = object()  # any backend: only whether t1c is refined matters here
    assert refined.channels_used() == ("t1c", "t2f")


def test_a_case_without_t2f_gets_et_from_its_t1c(tmp_path: Path, case_writer) -> None:
    """Without t2f there is no FLAIR whole tumour to search ET near (issue 27: every such
    case came out empty, reported "ok" with "no anomaly found"): the t1c channel's own
    component stands in for it where it is T2w-bright like a tumour; no edema without t2f."""
    _, lesion = synthetic_volumes()
    folder = case_writer("NOFLAIR-1", skip=("t2f",))
    out = tmp_path / "out"
    result = run(["predict", folder, out, "--method", "intensity", "--quiet"])
    assert result.exit_code == 0, result.output
    pred = np.asarray(nib.load(out / "NOFLAIR-1.nii.gz").dataobj)
    assert (pred[lesion] == 3).mean() > 0.5 and not (pred == 2).any()
    assert ((pred > 0) & ~ndimage.binary_dilation(lesion, iterations=3)).sum() == 0
    case = json.loads((out / "report.json").read_text())["cases"][0]
    assert case["status"] == "ok" and case["voxels_per_label"]["3"] > 100
    assert not any("no anomaly" in w for w in case["warnings"]), case["warnings"]


def test_without_t2f_a_t1c_component_must_look_like_a_tumour(case_writer) -> None:
    """Bright t1c with normal t2w (a vessel, the choroid plexus: 1,000-3,200 ET voxels on
    real MS patients' healthy tissue) is no tumour; with t1c alone only a component more
    abnormal than healthy calibration data is. Otherwise no ET, and a warning says why."""
    _, lesion = synthetic_volumes()
    folder = case_writer("VESSEL-2", skip=("t2f",))
    path = folder / "VESSEL-2-t2w.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.int16)
    data[lesion] = 500  # t2w as the healthy tissue around it
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    (case,) = discover_cases(folder)
    seg = make_segmenter("intensity").segment(load_case(case, allow_missing=True))
    assert not seg.labels.any() and "does not look like a tumour" in seg.warnings[0]
    (alone,) = discover_cases(case_writer("T1C-1", skip=("t1n", "t2f", "t2w")))
    volumes = load_case(alone, allow_missing=True)
    shipped = make_segmenter("intensity").segment(volumes)  # its t1c peak is the z clip
    assert not shipped.labels.any() and "healthy peak 5.00" in shipped.warnings[0]
    peaks = {"t1c+t1n+t2f+t2w": (4.5, 5.0)}  # a site's calibration, below the clip
    post = dataclasses.replace(intensity_baseline(), peak_thresholds_by_subset=peaks)
    sited = make_segmenter("intensity", None, PipelineConfig(intensity=post)).segment(volumes)
    assert (sited.labels[lesion] == 3).mean() > 0.5 and not sited.warnings


def test_without_t2f_the_paper_et_rule_keeps_the_t1c_component(case_writer) -> None:
    """The ``channel`` rule keeps the t1c component where it touches the FLAIR lesion; a
    case without t2f has none, so its t1c component is ET as it is."""
    (case,) = discover_cases(case_writer("NOFLAIR-CH", skip=("t2f",)))
    config = PipelineConfig(labels=LabelsConfig(et_rule="channel"))
    labels = make_segmenter("intensity", None, config).segment(load_case(case, allow_missing=True))
    _, lesion = synthetic_volumes()
    assert (labels.labels[lesion] == 3).mean() > 0.5 and not (labels.labels == 2).any()


def test_a_t2f_only_case_gets_the_papers_core_and_no_et(case_writer) -> None:
    """Without t1c there is no ET; a centre that the FLAIR lesion encloses but does not flag
    is core (necrosis or a cyst), as for any tumour without ET, and the docs say so (issue
    27: they said such a case gets no NETC)."""
    folder = case_writer("FLAIRONLY-1", skip=("t1c", "t1n", "t2w"))
    path = folder / "FLAIRONLY-1-t2f.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.int16)
    grid = np.indices(data.shape)
    centre = (np.array(data.shape) - 1) / 2 + np.array([4, -3, 0])
    hole = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= 2.5**2
    data[hole] = 400  # the brain's FLAIR level: not flagged, enclosed by the lesion
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    (case,) = discover_cases(folder)
    labels = make_segmenter("intensity").segment(load_case(case, allow_missing=True)).labels
    assert not (labels == 3).any() and (labels[hole] == 1).mean() > 0.5
    _, lesion = synthetic_volumes()
    assert (labels[lesion & ~hole] == 2).mean() > 0.7
    cli_doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    assert "Without t1c** there is no ET (label 3). The core (1) is then the paper's" in cli_doc


def test_the_labels_are_made_of_the_threshold_stages_whole_tumour(case_writer) -> None:
    """The whole tumour is chosen in the threshold stage, so what refinement makes of that
    component is what the labels show (a rule applied later from the maps ignored it)."""
    (case,) = discover_cases(case_writer("WT-1"))
    volumes = load_case(case)
    seg = make_segmenter("intensity")
    cand = seg.candidates(volumes)
    assert cand.binary["t2f"].any()
    labels = seg.labels(cand.binary, cand, volumes.present)
    assert ((labels > 0) >= cand.binary["t2f"]).all()
    empty = np.zeros_like(cand.binary["t2f"])
    # No whole tumour left (a refinement that rejected it all): no labels at all, since ET
    # is only looked for in and around the whole tumour.
    rejected = seg.labels({**cand.binary, "t2f": empty}, cand, volumes.present)
    assert labels.any() and not rejected.any()
