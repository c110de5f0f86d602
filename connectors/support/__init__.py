"""support vendors, one module each."""
