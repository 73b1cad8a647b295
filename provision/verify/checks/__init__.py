"""Check functions, one module per subject. Each takes a HostContext and returns Checks."""
