"""Who may render what, how often, and where the browser may go: checks made before any browser work."""
