"""The `quorum` command line: one sub-application per component, assembled in `main`."""
