"""Processing provider `claire` and its algorithms (one file per algorithm)."""
