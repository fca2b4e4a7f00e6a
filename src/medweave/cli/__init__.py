"""Command line: ``medweave serve | db | records | demo``."""
