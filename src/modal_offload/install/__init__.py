"""Everything that writes into a user's environment, each with install / check / uninstall."""
