"""Floor 0: what a grade is. Rubrics, scoring, comparison, memory layouts, the graded parts, one
adapter call's outputs and gradients, the oracle. Imports nothing else of lmgrade."""
