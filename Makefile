# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test bench install lint clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/relaydesk migrate
	$(VENV)/bin/relaydesk seed-demo --if-empty
	$(VENV)/bin/relaydesk serve

lint: $(TEST_STAMP)
	$(VENV)/bin/lint-imports

test: system-deps $(TEST_STAMP) lint
	$(PY) -m pytest -q

# Debian packages some tests need: dovecot-imapd (the email tests start private IMAP
# servers of their own) and chromium (browser tests). Installed only where missing,
# and only as root with apt-get; anywhere else those tests are skipped. Debian's
# package may start the system Dovecot (ports 143/993): stopped right after install.
system-deps:
	@missing=""; \
	[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "system-deps: not root with apt-get, so not installing$$missing: tests needing them (IMAP, browser) will be skipped"; \
		exit 0; \
	fi; \
	echo "system-deps: apt-get install$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || exit 1; \
	case "$$missing" in *dovecot-imapd*) service dovecot stop >/dev/null 2>&1 || true;; esac

bench: $(TEST_STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache
