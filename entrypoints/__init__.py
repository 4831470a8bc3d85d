"""The top floor: the processes and their command lines. The `eventmart` command
(entrypoints.cli), the local stack and its supervision, the demo seeders, and the analyst
and operator tools only the command line uses. Composes every floor below it; nothing
below imports it."""
