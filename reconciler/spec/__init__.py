"""Desired state in: spec documents (YAML in Git or a directory) -> validated, typed ``Specs``."""
