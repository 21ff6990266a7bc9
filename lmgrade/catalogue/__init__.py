"""Floor 1: the bug catalogue (instructors only), its variants of the reference, and diagnosis
(which catalogued mistake a wrong output matches)."""
