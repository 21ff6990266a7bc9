"""Floor 2: grading one submission, a class (gradebook), the grader itself (selfcheck), and what the
pytest plugin uses while tests run (the calls, the time budget, the recorder)."""
