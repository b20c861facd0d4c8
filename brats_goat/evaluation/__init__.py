"""Scoring: the BraTS lesion-wise metrics and the evaluate command's folder scoring."""
