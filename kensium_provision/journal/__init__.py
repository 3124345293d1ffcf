"""The hash-chained journal of every run, and the history read from it."""
