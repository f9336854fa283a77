"""ingest: validates raw transactions and labels, dead-letters bad input, dedups by tx_id."""
