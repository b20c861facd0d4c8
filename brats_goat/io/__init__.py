"""Reading and writing BraTS cases: discover -> read -> (grid) -> write."""
