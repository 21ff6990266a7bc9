"""Floor 1: what a grading writes: the scorecard, results.json, JUnit, Markdown, the student handout,
the Gradescope bundle."""
