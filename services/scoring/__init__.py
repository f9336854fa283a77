"""scoring: scores every enriched transaction with the champion (and shadow-scores with a challenger)."""
