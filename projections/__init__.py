"""Read models: one module per read model (its DDL and how each event changes it)."""
