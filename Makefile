# forge-mcp — the two commands of the README, and the helpers behind them.
#   make demo    install into .venv, then run the main job end to end (offline)
#   make flywheel  the data flywheel end to end: traces → dataset → a better model, served (offline)
#   make test    install into .venv (and the Inspector CLI into node_modules), run every test
#   make serve   run the server on http://127.0.0.1:8765

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first and pinned: the CPU build is on the machine; an open range pulls CUDA wheels.
TORCH  := torch==2.13.0
EXTRAS := dev,train,mlx,llamacpp,agent,sweep,rag,remote,ray
# llama-cpp-python compiles llama.cpp from source (~5 min on 2 cores). A portable AVX2
# build: the native one uses AMX tiles where the CPU lists them, and some sandboxes and
# VMs kill those instructions (SIGILL) on q8_0/q4 matrices. No multimodal tools.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
PYTEST_WORKERS ?= 2

BENCH_ROWS ?= 1000000

.PHONY: demo flywheel test lint serve install clean bench-data bench-train bench-serve bench-load bench-sweep bench-workflow bench-rag bench-ssh

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(PY) examples/demo.py

flywheel: install
	$(PY) examples/flywheel.py

lint: install
	$(VENV)/bin/ruff check forge_mcp tools agents backends tests benchmarks examples

# pytest exits 5 when it collected no test: that is a broken suite, never a pass.
test: install node_modules/.installed lint
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal -q -rfEs --durations=25; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests — failing" >&2; exit 1; fi; \
	exit $$rc

# The data benchmark: dataset_prepare against a straightforward pandas script, side by side.
bench-data: install
	$(PIP) install --quiet -e ".[bench]"
	$(PY) -m benchmarks.data_prepare --rows $(BENCH_ROWS) --folder .bench

# The training benchmark: a train_start job against a bare TRL script, same model, data and seed.
bench-train: install
	$(PY) -m benchmarks.train_sft --steps 40 --repeats 3 --folder .bench
	$(PY) -m benchmarks.train_methods --steps 200 --repeats 3 --folder .bench

# The serving benchmark: a forge-served llama.cpp endpoint against llama-cpp-python direct and transformers.
bench-serve: install
	$(PY) -m benchmarks.serve_tokens --tokens 128 --repeats 5 --folder .bench

# The load benchmark: forge against a bare MCPServer (both MCP eras) and a bare a2a-sdk app, side by side.
BENCH_CLIENTS ?= 50
BENCH_CALLS ?= 40
bench-load: install
	$(PIP) install --quiet -e ".[bench]"
	$(PY) -m benchmarks.load --clients $(BENCH_CLIENTS) --calls $(BENCH_CALLS) --a2a-calls 10 --rounds 2 --folder .bench

# The sweep benchmark: the median pruner against none (steps, best eval loss), and a sweep's trial against a train_start job.
bench-sweep: install
	$(PY) -m benchmarks.sweep --trials 12 --steps 50 --overhead-trials 3 --rounds 4 --folder .bench

# The SSH executor's overhead: one tiny training job here against the same job on a loopback SSH target (needs sshd).
bench-ssh: install
	$(PY) -m benchmarks.ssh_overhead --steps 30 --rounds 4 --folder .bench

# The workflow benchmark: two parallel branches of dataset_prepare against the same steps chained, and a
# chain of 50 trivial steps against the same tool calls made directly (the engine's overhead per step).
bench-workflow: install
	$(PY) -m benchmarks.workflow --rows 19000 --turns 12 --branch-steps 1 --steps 50 --rounds 4 --folder .bench

# The RAG benchmark: recall@1, recall@5 and MRR of rag_query on the labelled fixture (tests/rag/fixtures),
# embedding only, BM25 only and hybrid, with the tiny model as the embedding model (MODEL=folder for another).
bench-rag: install
	$(PY) -m benchmarks.rag_recall --chunk-chars 400 --overlap-chars 80 $(if $(MODEL),--model $(MODEL))

serve: install
	$(VENV)/bin/forge-mcp serve

clean:
	rm -rf $(VENV) node_modules .pytest_cache
