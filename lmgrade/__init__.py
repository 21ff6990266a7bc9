"""lmgrade: the grader of the Transformer-LM assignment.

Built in floors, each importing only from below (selftests/test_structure.py keeps it so):
core/ (0); sandbox/, catalogue/, outputs/ (1); grading/ (2); cli.py, pytest_plugin.py, demo.py (3).
"""
