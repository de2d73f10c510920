"""One module per subcommand; each function takes typed arguments and returns an exit code."""
