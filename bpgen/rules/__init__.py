"""The maths of every op: shape, numeric value, partials, VJP and JVP. Nothing about printing."""
