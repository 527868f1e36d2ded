"""Unsupervised Omniglot: SimCLR (Chen et al. 2020) on images_background without its labels.

configs/omniglot_simsiam.py with the NT-Xent loss: each view's positive is the other view of its image,
its negatives the 2B - 2 other views of the global batch (gathered across devices), cosine similarity
over a temperature; projector Dense - BN - ReLU - Dense, no predictor.

  python train.py --config configs/omniglot_simclr.py --workdir workdirs/omniglot_simclr
  python eval.py --checkpoint workdirs/omniglot_simclr --tasks across:5:1,across:20:1,within:20:1 --knn 1
"""
import ml_collections

from siamjax.configs import omniglot_simsiam


def get_config() -> ml_collections.ConfigDict:
    c = omniglot_simsiam.get_config()
    c.loss.name = "simclr"
    c.model.projection.update(hidden=512, dim=128, layers=2, predictor_hidden=0)
    c.loss.ssl_temperature = 0.1
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.train_steps = 1000
    return c
