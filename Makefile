# Quick start:  make demo   (train a small Omniglot twin on CPU and print its one-shot accuracy)
#               make test   (set up and run the test suite)
# The newest Python here that gets the newest JAX wheels (tools/pick_python.py; PYTHON=... overrides it)
PYTHON ?= $(shell python3 tools/pick_python.py)
VENV   ?= .venv
DATA   ?= ../shared/data
WORKDIR ?= workdirs/demo
STEPS  ?= 1000
BIN    := $(VENV)/bin
comma  := ,
empty  :=
space  := $(empty) $(empty)

SEEDS  ?= 2
LONG_SEEDS ?= 0
HIRES_SEEDS ?= 0
CROP_SEEDS ?= 1 2
CROPWIDE_SEEDS ?= 0
CROPHIRES_SEEDS ?= 0 1
CROPHIRESLONG_SEEDS ?= 3
CROPHIRESMOMENTS_SEEDS ?= 0 1

.PHONY: demo test smoke-oldest setup clean pretrained-omniglot

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/python -m siamjax.data.fetch_omniglot $(DATA)/omniglot
	rm -rf $(WORKDIR)
	$(BIN)/python train.py --config configs/omniglot.py --workdir $(WORKDIR) \
	  --config.data.dir=$(DATA)/omniglot --config.optim.train_steps=$(STEPS)
	$(BIN)/python eval.py --checkpoint $(WORKDIR) --data_dir $(DATA)/omniglot \
	  --tasks within:20:1 --episodes 100

test: setup
	SIAMJAX_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=15 tests

# CI's second run: a few core tests on the oldest supported Python here (its own venv, .venv-oldest)
SMOKE_TESTS ?= tests/test_losses.py tests/test_margin_losses.py tests/test_pick_python.py \
  tests/test_train.py::test_checkpoint_round_trip_gives_identical_scores tests/test_train.py::test_resume_continues_from_the_latest_checkpoint
smoke-oldest:
	$(MAKE) setup VENV=.venv-oldest PYTHON=$$(python3 tools/pick_python.py --oldest)
	SIAMJAX_DATA=$(abspath $(DATA)) .venv-oldest/bin/python -m pytest -q -n 2 --dist loadscope $(SMOKE_TESTS)

# Rebuild pretrained/omniglot, the eleven-member ensemble, from scratch (about 17 h on 2 CPU cores): one
# training run per recipe and seed below (workdirs/omniglot_RUN_seedS), then the ensemble of their
# checkpoints (weights stored as float16 to fit the 25 MB limit), each member's within-class whitening
# (a few minutes) and its second-to-last block's maximum appended to its embedding. How the recipes and
# seeds were chosen: experiments/omniglot/.
# Each recipe is VARIANT:RUN:MEMBER-NAME-STEM:STEP:SEED-VARIABLE (VARIANT: of configs/omniglot.py; STEP
# "best": the run's best step).
OMNIGLOT_RECIPES := \
  oneshot:oneshot:seed:best:SEEDS \
  proxies_long:proxieslong:proxieslong_seed:best:LONG_SEEDS \
  hires:proxieshires:proxieshires_seed:best:HIRES_SEEDS \
  crop:proxiescrop:proxiescrop_seed:4000:CROP_SEEDS \
  crop_wide:proxiescropwide:proxiescropwide_seed:4000:CROPWIDE_SEEDS \
  crop_hires:proxiescrophires:proxiescrophires_seed:4000:CROPHIRES_SEEDS \
  crop_hires_long:proxiescrophireslong:proxiescrophireslong_seed:6000:CROPHIRESLONG_SEEDS \
  moments64:proxiescrophiresmoments:proxiescrophiresmoments_seed:4000:CROPHIRESMOMENTS_SEEDS
# $(call recipe_field,N,RECIPE): the Nth field of a recipe; $(call recipe_seeds,RECIPE): its seeds
recipe_field = $(word $(1),$(subst :, ,$(2)))
recipe_seeds = $($(call recipe_field,5,$(1)))
# $(call recipe_runs,RECIPE): the shell loop that trains one run per seed
recipe_runs = for s in $(call recipe_seeds,$(1)); do $(BIN)/python train.py --config configs/omniglot.py:$(call recipe_field,1,$(1)) \
	  --workdir workdirs/omniglot_$(call recipe_field,2,$(1))_seed$$s --config.seed=$$s --config.data.dir=$(DATA)/omniglot || exit 1; done
# $(call recipe_checkpoint,RECIPE,SEED): the workdir, or its step folder when the recipe names a step
recipe_checkpoint = workdirs/omniglot_$(call recipe_field,2,$(1))_seed$(2)$(if \
	$(filter best,$(call recipe_field,4,$(1))),,/checkpoints/$(call recipe_field,4,$(1)))
member_checkpoints = $(foreach r,$(OMNIGLOT_RECIPES),$(foreach s,$(call recipe_seeds,$(r)),$(call recipe_checkpoint,$(r),$(s))))
member_names = $(foreach r,$(OMNIGLOT_RECIPES),$(foreach s,$(call recipe_seeds,$(r)),$(call recipe_field,3,$(r))$(s)))

pretrained-omniglot: setup
	$(foreach r,$(OMNIGLOT_RECIPES),$(call recipe_runs,$(r));)
	rm -rf pretrained/omniglot
	$(BIN)/python -m siamjax.cli.ensemble pretrained/omniglot $(member_checkpoints) --weights_dtype float16 \
	  --names $(subst $(space),$(comma),$(strip $(member_names)))
	$(BIN)/python -m siamjax.cli.whitening pretrained/omniglot --data_dir $(DATA)/omniglot
	$(BIN)/python -m siamjax.cli.block_pooling pretrained/omniglot

clean:
	rm -rf $(VENV) .venv-oldest workdirs
