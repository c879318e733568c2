"""What users write: the @function decorator, tensors, nn, bpgen's SymPy functions, spec files,
and lowering SymPy expressions to the IR."""
