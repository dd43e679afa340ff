"""The Invoke tasks, one module per group; each reads config, plans, runs, reports."""
