"""The ``selfiter`` command line: one module per sub-command."""
