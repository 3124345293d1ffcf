"""`kprov check client --all`: the whole fleet checked over one snapshot of batched reads."""
