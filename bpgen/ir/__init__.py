"""The intermediate representation: hash-consed nameless nodes, their ops, shapes, and a scan's body.
Knows nothing of derivatives or printing."""
