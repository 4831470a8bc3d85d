"""The thin HTTP API: commands call Application methods, queries read read models only."""
