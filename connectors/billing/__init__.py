"""billing vendors, one module each."""
