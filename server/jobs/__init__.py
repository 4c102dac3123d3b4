"""Periodic jobs: escalation, the quarantine schedule, device watch, retention."""
