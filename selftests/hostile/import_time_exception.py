"""Raises at import: every item fails as "could not be imported"; nothing crashes."""
raise RuntimeError("boom at import time")
