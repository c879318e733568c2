"""What every Python target shares: precedence-aware printing, naming, guards and the Jinja rendering."""
