"""The intermediate representation: hash-consed nodes, the algebra that builds them, shapes, loops' bodies and
the idioms recognized while building. Knows nothing of derivatives or printing."""
