"""Training on healthy slices: slice selection, augmentation, losses, the training loop
and label-free calibration."""
