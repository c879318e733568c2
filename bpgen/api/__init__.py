"""The objects users hold: the compiled function, the decorator, spec files, the flat view, argument checks
and pictures."""
