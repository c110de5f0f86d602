"""product vendors, one module each."""
