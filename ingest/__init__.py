"""The ERP-facing API: validates, pseudonymises and publishes events."""
