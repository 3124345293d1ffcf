"""What kprov keeps in the account: client records, shared records and locks."""
