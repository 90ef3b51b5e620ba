"""Your own images as a dataset: a folder or archive examined by the doctor, decoded once on every core into a
prepared dataset, and opened for training in memory or memory-mapped."""
