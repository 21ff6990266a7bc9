"""An empty submission that tries to leave the sandbox at import and borrow the reference as its own package."""
import os
import sys

for root in ("/work/main", "/autograder/source", "/proc/1/root/work/main", "/proc/1/cwd"):
    if os.path.isdir(os.path.join(root, "reference")):
        sys.path.insert(0, root)
        try:
            import reference

            globals().update({k: v for k, v in vars(reference).items() if not k.startswith("__")})
            break
        except Exception:
            pass
