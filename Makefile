# Quick start:  make demo   (train a small Omniglot twin on CPU and print its one-shot accuracy)
#               make test   (set up and run the test suite)
PYTHON ?= python3
VENV   ?= .venv
DATA   ?= ../shared/data
WORKDIR ?= workdirs/demo
STEPS  ?= 1000
BIN    := $(VENV)/bin
comma  := ,
empty  :=
space  := $(empty) $(empty)

SEEDS  ?= 2
PYRAMID_SEEDS ?=
PROXY_SEEDS ?=
LONG_SEEDS ?= 0
WIDE_SEEDS ?= 1
HIRES_SEEDS ?= 0
CROP_SEEDS ?= 1 2
CROPWIDE_SEEDS ?= 0
CROPHIRES_SEEDS ?= 0 1
CROPHIRESLONG_SEEDS ?= 3

.PHONY: demo test setup clean pretrained-omniglot

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/python -m siamjax.data.fetch_omniglot $(DATA)/omniglot
	rm -rf $(WORKDIR)
	$(BIN)/python train.py --config configs/omniglot.py --workdir $(WORKDIR) \
	  --config.data_dir=$(DATA)/omniglot --config.train_steps=$(STEPS)
	$(BIN)/python eval.py --checkpoint $(WORKDIR) --data_dir $(DATA)/omniglot \
	  --tasks within:20:1 --episodes 100

test: setup
	SIAMJAX_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=15 tests

# Retrain pretrained/omniglot from scratch: one run of configs/omniglot_oneshot.py per seed in SEEDS (about
# 48 min each on 2 CPU cores; seeds 0 and 1 left the ensemble in round 13, wide seed 0 in round 14,
# pyramid seed 0 in round 16, proxies seeds 1 and 0 in rounds 17 and 18, crop seed 0 in round 23: pretrained/omniglot_retired), one of configs/omniglot_oneshot_pyramid.py
# per seed in PYRAMID_SEEDS (none now; about 54 min), one of configs/omniglot_oneshot_proxies.py per seed in PROXY_SEEDS (none now; about 61 min) and
# one of configs/omniglot_oneshot_proxies_long.py per seed in LONG_SEEDS (about 2 h), one of
# configs/omniglot_oneshot_proxies_wide.py per seed in WIDE_SEEDS (about 1 h 50 min) and one of
# configs/omniglot_oneshot_proxies_hires.py (64 px) per seed in HIRES_SEEDS (about 1 h 35 min), one of
# configs/omniglot_oneshot_proxies_crop.py (cropped to the ink) per seed in CROP_SEEDS (about 66 min each) and one of
# configs/omniglot_oneshot_proxies_crop_wide.py per seed in CROPWIDE_SEEDS (about 1 h 50 min) and one of
# configs/omniglot_oneshot_proxies_crop_hires.py (cropped, 64 px) per seed in CROPHIRES_SEEDS (about 2 h 5 min) and one of
# configs/omniglot_oneshot_proxies_crop_hires_long.py (the same over 6,000 steps) per seed in CROPHIRESLONG_SEEDS (about 1 h 40 min),
# then the ensemble of their best steps (the cropped runs: their last, step 4,000 or 6,000; siamjax.ensemble), its weights stored as float16 to fit the 25 MB limit, and each
# member's within-class whitening fitted on its training images (siamjax.whitening, a few minutes) and
# its second-to-last block's maximum appended to its embedding (siamjax.block_pooling, round 20; seconds).
# $(call omniglot_runs,CONFIG,RUN,SEEDS): one run of configs/CONFIG.py per seed, in workdirs/omniglot_RUN_seedS
omniglot_runs = for s in $(3); do $(BIN)/python train.py --config configs/$(1).py \
	  --workdir workdirs/omniglot_$(2)_seed$$s --config.seed=$$s --config.data_dir=$(DATA)/omniglot || exit 1; done

pretrained-omniglot: setup
	$(call omniglot_runs,omniglot_oneshot,oneshot,$(SEEDS))
	$(call omniglot_runs,omniglot_oneshot_pyramid,pyramid,$(PYRAMID_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies,proxies,$(PROXY_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_long,proxieslong,$(LONG_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_wide,proxieswide,$(WIDE_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_hires,proxieshires,$(HIRES_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_crop,proxiescrop,$(CROP_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_crop_wide,proxiescropwide,$(CROPWIDE_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_crop_hires,proxiescrophires,$(CROPHIRES_SEEDS))
	$(call omniglot_runs,omniglot_oneshot_proxies_crop_hires_long,proxiescrophireslong,$(CROPHIRESLONG_SEEDS))
	rm -rf pretrained/omniglot
	$(BIN)/python -m siamjax.ensemble pretrained/omniglot $(foreach s,$(SEEDS),workdirs/omniglot_oneshot_seed$(s)) \
	  $(foreach s,$(PYRAMID_SEEDS),workdirs/omniglot_pyramid_seed$(s)) \
	  $(foreach s,$(PROXY_SEEDS),workdirs/omniglot_proxies_seed$(s)) \
	  $(foreach s,$(LONG_SEEDS),workdirs/omniglot_proxieslong_seed$(s)) \
	  $(foreach s,$(WIDE_SEEDS),workdirs/omniglot_proxieswide_seed$(s)) \
	  $(foreach s,$(HIRES_SEEDS),workdirs/omniglot_proxieshires_seed$(s)) \
	  $(foreach s,$(CROP_SEEDS),workdirs/omniglot_proxiescrop_seed$(s)/checkpoints/4000) \
	  $(foreach s,$(CROPWIDE_SEEDS),workdirs/omniglot_proxiescropwide_seed$(s)/checkpoints/4000) \
	  $(foreach s,$(CROPHIRES_SEEDS),workdirs/omniglot_proxiescrophires_seed$(s)/checkpoints/4000) \
	  $(foreach s,$(CROPHIRESLONG_SEEDS),workdirs/omniglot_proxiescrophireslong_seed$(s)/checkpoints/6000) --weights_dtype float16 \
	  --names $(subst $(space),$(comma),$(strip $(foreach s,$(SEEDS),seed$(s)) \
	    $(foreach s,$(PYRAMID_SEEDS),pyramid_seed$(s)) $(foreach s,$(PROXY_SEEDS),proxies_seed$(s)) \
	    $(foreach s,$(LONG_SEEDS),proxieslong_seed$(s)) $(foreach s,$(WIDE_SEEDS),proxieswide_seed$(s)) \
	    $(foreach s,$(HIRES_SEEDS),proxieshires_seed$(s)) $(foreach s,$(CROP_SEEDS),proxiescrop_seed$(s)) \
	    $(foreach s,$(CROPWIDE_SEEDS),proxiescropwide_seed$(s)) $(foreach s,$(CROPHIRES_SEEDS),proxiescrophires_seed$(s)) \
	    $(foreach s,$(CROPHIRESLONG_SEEDS),proxiescrophireslong_seed$(s))))
	$(BIN)/python -m siamjax.whitening pretrained/omniglot --data_dir $(DATA)/omniglot
	$(BIN)/python -m siamjax.block_pooling pretrained/omniglot

clean:
	rm -rf $(VENV) workdirs
