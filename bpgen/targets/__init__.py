"""Code targets: each prints the pipeline's program as a module (a syntax table per op, naming, rendering)."""
