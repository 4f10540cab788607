"""A deterministic generator of a realistic demo catalog and population."""
