"""Selection: routing rules, the directory, matchers, and the digest of one segment and period."""
