"""Tests of the staff console."""
