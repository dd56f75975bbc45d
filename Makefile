# The two commands of the README: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
GEN    := data/generated
RUNS   := runs/demo

.PHONY: install demo demo-captcha demo-vqa test bench bench-serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

# The test tools (pytest, the browser driver, ruff, mypy) only for `make test`: the demo does
# not need them, and installing them took 24 s of its time.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(TEST_STAMP)

install: $(STAMP)

demo: demo-captcha demo-vqa
	@echo
	@echo "Serve both demo models (web page, JSON API, API docs at /docs):"
	@echo "  $(BIN)/captcha-vqa serve --captcha $(RUNS)/captcha --vqa $(RUNS)/vqa"
	@echo "  then open http://127.0.0.1:8000/"

demo-captcha: $(STAMP)
	$(BIN)/captcha generate $(GEN)/captcha-train --count 1500 --length 4 --style dark-lines --seed 1 --force
	$(BIN)/captcha generate $(GEN)/captcha-test --count 300 --length 4 --style dark-lines --seed 2 --force
	$(BIN)/captcha train $(GEN)/captcha-train --out $(RUNS)/captcha --reader segment --seed 0 --force --quiet
	$(BIN)/captcha evaluate $(RUNS)/captcha $(GEN)/captcha-test --report $(RUNS)/captcha-report.json
	$(BIN)/captcha predict $(RUNS)/captcha data/samples/captcha/*.png

demo-vqa: $(STAMP)
	$(BIN)/vqa train --dataset easy-vqa --epochs 3 --seed 0 --out $(RUNS)/vqa --force
	$(BIN)/vqa evaluate $(RUNS)/vqa --dataset easy-vqa --split test --max-questions 2000 --report $(RUNS)/vqa-report.json
	$(BIN)/vqa predict $(RUNS)/vqa --image data/samples/vqa/sample.png --question "What shape is in the image?" --top 3

test: $(TEST_STAMP)   # lint, formatting and types first (cheap), then the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/captcha_bench.py
	$(BIN)/python bench/captcha_v2_splits.py
	$(BIN)/python bench/vqa_bench.py

bench-serve: $(STAMP)   # the server under load, on the models of `make demo`
	$(BIN)/python bench/serve_bench.py --captcha $(RUNS)/captcha --vqa $(RUNS)/vqa

clean:
	rm -rf $(GEN) runs .pytest_cache
