"""The bank's rules in plain Python: no database, queue or validation framework is imported here."""
