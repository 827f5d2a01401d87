"""Test and benchmark support: helpers that run real local services."""
