"""Test fixtures shared by the suite and by scripts/: keys, tokens, a fake AuthPI issuer."""
