"""The maths of every op (shape, numeric value, partials, VJP, JVP), the algebra of smart constructors that
applies it (folding, shapes), and the idioms recognized while building. Nothing about printing."""
