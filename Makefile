# ray-tasks from make: `make quickstart` (a one-node cluster here), `make cluster`, `make test`.
# PYTHON is the controller's interpreter, with requirements.txt installed.
PYTHON ?= .venv/bin/python
INV = $(PYTHON) -m invoke

.PHONY: quickstart cluster stop test

.venv/bin/python: requirements.txt requirements-dev.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements-dev.txt
	touch .venv/bin/python

nodes.txt:
	echo localhost > nodes.txt

quickstart: .venv/bin/python nodes.txt
	$(INV) install start test

cluster:
	$(INV) install start test

stop:
	$(INV) stop

# pytest exits 5 when it collected no tests: a broken suite, not a pass.
test: .venv/bin/python
	$(PYTHON) -m pytest -v -rs tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status
