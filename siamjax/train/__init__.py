"""Training: config checks, state, the per-device step, batches, validation, resume and the loop.

``siamjax.train.train(cfg, workdir)`` runs a config (see configs/); the pieces are pure functions a
custom loop can reuse (:func:`make_train_step`, :func:`create_state`, :func:`twin_from_config`, ...).
"""
from siamjax.data.sources import drop_classes, load_data, preprocessing_from_config
from siamjax.train.batches import make_batch_fn, make_batch_fn_checked, make_unlabeled_batch_fn
from siamjax.config_layout import DEFAULTS, upgrade_config
from siamjax.train.config import (COMPUTE_DTYPES, LOSSES, PAIR_LOSSES, PK_LOSSES, SSL_LOSSES, check_config,
                                  check_embedding_shape, fill_defaults,
                                  model_meta, projection_from_config, train_views_from_config, twin_from_config,
                                  views_from_config)
from siamjax.train.resume import check_resume_compatible, init_from_checkpoint, restore_latest
from siamjax.train.state import TrainState, create_state, make_optimizer, state_variables, train_items, with_train_items
from siamjax.train.step import gradient_step, make_train_step
from siamjax.train.trainer import train
from siamjax.train.validate import make_embedder, make_validator

__all__ = ["COMPUTE_DTYPES", "DEFAULTS", "LOSSES", "PAIR_LOSSES", "PK_LOSSES", "SSL_LOSSES",
           "TrainState", "check_config", "check_embedding_shape", "check_resume_compatible", "create_state", "drop_classes", "fill_defaults",
           "gradient_step",
           "init_from_checkpoint", "load_data", "make_batch_fn", "make_batch_fn_checked", "make_embedder",
           "make_optimizer", "make_train_step", "make_unlabeled_batch_fn", "make_validator", "model_meta",
           "preprocessing_from_config", "projection_from_config", "restore_latest", "state_variables",
           "train", "train_items", "train_views_from_config", "twin_from_config", "upgrade_config", "views_from_config",
           "with_train_items"]
