"""Plumbing shared by every edge: settings, logging, the task queue contract and the network guard."""
