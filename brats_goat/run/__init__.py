"""Running the segmenter over folders: the predict runner, its report, shards, merged
reports and QC pictures."""
