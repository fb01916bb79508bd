"""`bokvar simulate`: a synthetic ERP that drives the pipeline through ingest's HTTP API."""
