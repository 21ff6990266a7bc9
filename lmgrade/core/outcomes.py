"""Exceptions that end a graded test at once.

They derive from BaseException, not Exception, so Hypothesis does not try to shrink them:
shrinking a missing function or a timeout would only repeat it, for minutes.
"""


class NotImplementedInSubmission(BaseException):
    """The submission raised NotImplementedError, or lacks the adapter."""


class GradingTimeout(BaseException):
    """A graded test ran past its time limit."""


class ForbiddenCall(BaseException):
    """The submission called a torch function the assignment forbids."""


class SubmissionCrashed(BaseException):
    """The submission's process ended in the middle of a call."""


class SubmissionBroken(BaseException):
    """The submission could not be imported at all."""
