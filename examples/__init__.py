"""Runnable examples of Projectionist; each is run by a test."""
