"""Floor 1: everything that runs untrusted code and what crosses its boundary: the sandbox tiers,
staging, the child process, the wire, replies, process trees, the forbidden-call policy, the
static scan, intake."""
