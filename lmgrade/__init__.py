"""lmgrade: the grader of the Transformer-LM assignment."""
