"""Ledger state, late-rent detection, legal milestones, signals."""
