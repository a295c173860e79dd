"""A whole consortium on this machine, for `ensnif demo` and the tests (above everything else)."""
