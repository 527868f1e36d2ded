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
WIDE_SEEDS ?=
HIRES_SEEDS ?= 0
CROP_SEEDS ?= 1 2
CROPWIDE_SEEDS ?= 0
CROPHIRES_SEEDS ?= 0 1
CROPHIRESLONG_SEEDS ?= 3
CROPHIRESMOMENTS_SEEDS ?= 0 1

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

# Retrain pretrained/omniglot from scratch: for each recipe below, one training run per seed in its seed
# variable (workdirs/omniglot_RUN_seedS), then the ensemble of their checkpoints (siamjax.ensemble; the
# run's best step, or the step named), its weights stored as float16 to fit the 25 MB limit, each
# member's within-class whitening fitted on its training images (siamjax.whitening, a few minutes) and
# its second-to-last block's maximum appended to its embedding (siamjax.block_pooling, round 20;
# seconds). Times per run on 2 CPU cores: oneshot about 48 min, pyramid 54 min, proxies 61 min,
# proxieslong 2 h, proxieswide 1 h 50 min, proxieshires (64 px) 1 h 35 min, proxiescrop (cropped to
# the ink) 66 min, proxiescropwide 1 h 50 min, proxiescrophires (cropped, 64 px) 2 h 5 min,
# proxiescrophireslong (the same over 6,000 steps) 1 h 40 min, proxiescrophiresmoments (cropped to the
# ink's moments, 64 px) about 66 min. Members that left the ensemble (pretrained/omniglot_retired:
# oneshot seeds 0 and 1, wide seeds 0 and 1, pyramid seed 0, proxies seeds 0 and 1, crop seed 0) have
# no seeds here any more; docs/omniglot_history.md says when and why.
# Each recipe is CONFIG:RUN:MEMBER-NAME-STEM:STEP:SEED-VARIABLE (STEP "best": the run's best step).
OMNIGLOT_RECIPES := \
  omniglot_oneshot:oneshot:seed:best:SEEDS \
  omniglot_oneshot_pyramid:pyramid:pyramid_seed:best:PYRAMID_SEEDS \
  omniglot_oneshot_proxies:proxies:proxies_seed:best:PROXY_SEEDS \
  omniglot_oneshot_proxies_long:proxieslong:proxieslong_seed:best:LONG_SEEDS \
  omniglot_oneshot_proxies_wide:proxieswide:proxieswide_seed:best:WIDE_SEEDS \
  omniglot_oneshot_proxies_hires:proxieshires:proxieshires_seed:best:HIRES_SEEDS \
  omniglot_oneshot_proxies_crop:proxiescrop:proxiescrop_seed:4000:CROP_SEEDS \
  omniglot_oneshot_proxies_crop_wide:proxiescropwide:proxiescropwide_seed:4000:CROPWIDE_SEEDS \
  omniglot_oneshot_proxies_crop_hires:proxiescrophires:proxiescrophires_seed:4000:CROPHIRES_SEEDS \
  omniglot_oneshot_proxies_crop_hires_long:proxiescrophireslong:proxiescrophireslong_seed:6000:CROPHIRESLONG_SEEDS \
  omniglot_oneshot_proxies_crop_hires_moments:proxiescrophiresmoments:proxiescrophiresmoments_seed:4000:CROPHIRESMOMENTS_SEEDS
# $(call recipe_field,N,RECIPE): the Nth field of a recipe; $(call recipe_seeds,RECIPE): its seeds
recipe_field = $(word $(1),$(subst :, ,$(2)))
recipe_seeds = $($(call recipe_field,5,$(1)))
# $(call recipe_runs,RECIPE): the shell loop that trains one run per seed
recipe_runs = for s in $(call recipe_seeds,$(1)); do $(BIN)/python train.py --config configs/$(call recipe_field,1,$(1)).py \
	  --workdir workdirs/omniglot_$(call recipe_field,2,$(1))_seed$$s --config.seed=$$s --config.data_dir=$(DATA)/omniglot || exit 1; done
# $(call recipe_checkpoint,RECIPE,SEED): the workdir, or its step folder when the recipe names a step
recipe_checkpoint = workdirs/omniglot_$(call recipe_field,2,$(1))_seed$(2)$(if \
	$(filter best,$(call recipe_field,4,$(1))),,/checkpoints/$(call recipe_field,4,$(1)))
member_checkpoints = $(foreach r,$(OMNIGLOT_RECIPES),$(foreach s,$(call recipe_seeds,$(r)),$(call recipe_checkpoint,$(r),$(s))))
member_names = $(foreach r,$(OMNIGLOT_RECIPES),$(foreach s,$(call recipe_seeds,$(r)),$(call recipe_field,3,$(r))$(s)))

pretrained-omniglot: setup
	$(foreach r,$(OMNIGLOT_RECIPES),$(call recipe_runs,$(r));)
	rm -rf pretrained/omniglot
	$(BIN)/python -m siamjax.ensemble pretrained/omniglot $(member_checkpoints) --weights_dtype float16 \
	  --names $(subst $(space),$(comma),$(strip $(member_names)))
	$(BIN)/python -m siamjax.whitening pretrained/omniglot --data_dir $(DATA)/omniglot
	$(BIN)/python -m siamjax.block_pooling pretrained/omniglot

clean:
	rm -rf $(VENV) workdirs
