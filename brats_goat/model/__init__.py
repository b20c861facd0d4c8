"""The MViT-AE network, its presets, checkpoints and the weights manifest."""
