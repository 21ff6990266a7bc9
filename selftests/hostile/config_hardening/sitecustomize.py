import builtins

builtins.__dict__["__lmgrade_forged__"] = True
raise SystemExit("sitecustomize from the submission ran")
