"""EventMart: the composition root — settings, wiring, the local stack and the CLI."""
