"""Writer-independent offline signature verification: SigComp2011 Dutch (the "sign_data" test split).

  python train.py --config configs/signatures.py --workdir workdirs/signatures

The zip holds ``sign_data/Dataset/test/<WWW>/`` (12 genuine signatures of writer WWW) and
``<WWW>_forg/`` (skilled forgeries of WWW), 21 writers 049..069; each folder is read as its own class,
so a writer's forgeries are negatives of that writer in every triplet batch. Writers 063..069 are the
test set (``data.holdout_classes``: never trained on nor validated on); writers 060..062 (genuine and forgery
folders together, ``data.val_classes``) validate; 049..059 train. Scans (RGB, 355x190 to 1372x778, dark ink on
light paper) are made grey with ink high, cropped to their ink and resized keeping their aspect.
Evaluation on ``test_data.csv`` pairs of the test writers: see README, "Signatures (SigComp2011 Dutch)".
"""
import ml_collections

from siamjax.configs import folder


def get_config() -> ml_collections.ConfigDict:
    c = folder.get_config()  # every key and its meaning: configs/folder.py
    c.data.dir = "../shared/data/signatures_sigcomp2011_dutch/sign_data_test.zip"
    c.data.holdout_classes = ("06[3-9]", "06[3-9]_forg")  # test writers 063..069: genuine and forgeries
    c.data.val_classes = ("06[0-2]", "06[0-2]_forg")  # validation writers, both folders on the same side
    c.data.image_size = 64  # keep_aspect: the longer side
    # Signatures are small on large pages: crop to the ink, keep the aspect.
    c.data.crop_to_ink = True
    c.data.ink_threshold = 0.25  # these scans' strokes are light grey (often 0.3-0.5 once inverted)
    c.data.keep_aspect = True
    c.data.batch_size = 88  # 22 classes x 4 images: every training class in every batch
    c.optim.train_steps = 350
    c.optim.warmup_steps = 30
    c.augment.translate_px = 2.0 * 64 / 105  # Koch's +-2 px at 105 px, scaled to 64 px
    c.eval.eval_every = 50
    c.checkpoint_every = 50
    c.eval.val_episodes = 200
    return c
