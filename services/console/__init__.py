"""The staff console: web pages housing officers, coordinators and social services use."""
