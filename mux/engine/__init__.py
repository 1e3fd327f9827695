"""The only code that knows the container CLI: which engine, its CLI, argv, the runner."""
