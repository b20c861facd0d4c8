"""brats-goat: label-free brain-tumour segmentation with a multimodal ViT autoencoder."""

__version__ = "0.1.0"
