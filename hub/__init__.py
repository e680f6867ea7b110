"""The hub's rules: settings, tokens, and one service per capability. Knows no transport."""
