"""What consumes the pipeline's results: argument conversion, parameters, the gradient check, pictures,
and the command line."""
