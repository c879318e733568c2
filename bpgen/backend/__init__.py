"""From the differentiated program to a module: naming, printing, rendering, the runtime helpers,
writing, loading and precompiling."""
