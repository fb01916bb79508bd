"""SMS to tenants and tasks for staff."""
