"""The inference stages, in data-flow order: normalise -> reconstruct -> restore ->
anomaly -> threshold -> refine -> labels. No stage imports training code."""
