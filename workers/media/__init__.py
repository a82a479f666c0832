"""Pure media functions: sniff, probe, decode, resize, encode. No database, no settings, no network."""
