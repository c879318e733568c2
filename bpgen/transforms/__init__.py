"""Program transformations on the IR: reverse mode, forward mode, forward over reverse, and a scan's body."""
