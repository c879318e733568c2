"""The target-independent program: what the pipeline derives from a declaration, before any text."""
