"""Reading and writing BraTS cases: discover -> read -> (resample) -> write."""
