"""The live event stream's process: relay committed changes to per-user Redis streams, serve them as SSE."""
