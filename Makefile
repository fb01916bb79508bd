# Thin wrappers around dev.py, which installs what it needs into .venv.
.PHONY: run up test lint typecheck bench docs
run up:
	python3 dev.py up
test:
	python3 dev.py test
lint:
	python3 dev.py lint
typecheck:
	python3 dev.py typecheck
bench:
	python3 dev.py bench
docs:
	python3 dev.py bokvar docs
