"""The IR, its algebra, shapes, the rule table, idioms, and the transformations (reverse mode)."""
