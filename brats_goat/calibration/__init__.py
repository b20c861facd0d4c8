"""Label-free calibration: every threshold the pipeline measures on healthy tissue.

- ``thresholds``: a checkpoint's residual thresholds on held-out healthy slices (after
  training, and ``brats-goat calibrate thresholds`` for a site's own scans);
- ``tissue``: the same on whole healthy volumes, as ``predict`` reads them (``--tissue``);
- ``intensity``: the intensity baseline's thresholds (``intensity_baseline.json``);
- ``enhancement`` and ``tumour``: healthy t1c and T2w levels (``enhancement.json``,
  ``tumour.json``), from ``healthy_levels``;
- ``records``: writing a result with its settings (``brats_goat.calibrated`` reads them).

The inference path never imports this package; it imports the stages.
"""
