"""Every adapter loops forever: graded with every item timed out, within the time budget (+ 1 min)."""


def __getattr__(name):
    if name.startswith("run_"):
        def hang(*args, **kwargs):
            while True:
                pass

        return hang
    raise AttributeError(name)
