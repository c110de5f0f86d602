"""crm vendors, one module each."""
