"""Pages of the staff console."""
