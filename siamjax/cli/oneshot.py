"""``siamjax-eval oneshot``: N-way K-shot one-shot accuracy of a checkpoint on Omniglot's evaluation
alphabets (or a folder's classes, MNIST, a TFDS split), or the mean error over Lake-layout run folders.

  siamjax-eval oneshot --checkpoint workdirs/omniglot                    # 20-way within-alphabet 1-shot
  siamjax-eval oneshot --checkpoint DIR --tasks within:20:1,across:5:1,across:20:5 --episodes 200
  siamjax-eval oneshot --checkpoint DIR --lake_runs path/to/all_runs     # runXX/{training,test,class_labels.txt}
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np
from absl import app, flags, logging

flags.DEFINE_string("checkpoint", None, "Training workdir, Orbax manager folder or step folder.", required=True)
flags.DEFINE_string("data", "omniglot", "omniglot | folder (a class-per-subfolder folder or zip at --data_dir) | "
                    "tfds:NAME (a prepared TensorFlow Datasets dataset; --split is its split) | "
                    "mnist (the MNIST IDX files in --data_dir, test split unless --split=train: Koch's "
                    "10-way one-shot transfer test, e.g. --tasks across:10:1).")
flags.DEFINE_string("data_dir", "../shared/data/omniglot", "Omniglot: folder with images_evaluation.zip (or the "
                    "extracted folder). folder: the image folder or zip. tfds: the TFDS data folder (optional).")
flags.DEFINE_string("split", "evaluation", "Omniglot split to build tasks from (evaluation alphabets by default); "
                    "with --data=tfds:NAME, the TFDS split (e.g. test).")
flags.DEFINE_list("alphabets", [], "Only these alphabets of the split (default: all).")
flags.DEFINE_list("classes", [], "Only the classes whose name matches one of these fnmatch patterns (e.g. "
                  "'s3[1-9],s40' of a folder, 'Latin/*' of Omniglot); default: all. A warning names the classes "
                  "the checkpoint was trained on, when the data is its own.")
flags.DEFINE_string("tasks", "within:20:1", "Comma-separated protocol:ways:shots, protocol within|across.")
flags.DEFINE_integer("episodes", 100, "Episodes per task (an N-way episode asks N questions).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the task sampler.")
flags.DEFINE_string("lake_runs", None, "Evaluate Lake-layout run folders instead of sampled tasks.")
flags.DEFINE_float("max_bad_fraction", 0.01, "--data=folder: largest share of unreadable image files skipped "
                   "(counted and named) before the run fails.")
flags.DEFINE_string("out", None, "Also write the results as JSON to this file.")
flags.DEFINE_string("grid", None, "Write a PNG of the first task's questions here: each query, the support "
                    "image it matched (green right, red wrong) and the right one when wrong.")
flags.DEFINE_integer("grid_episodes", 2, "Episodes drawn in the --grid picture.")
flags.DEFINE_integer("tta_shift", 0, "Test-time augmentation: average each embedding over the image and its "
                     "copies moved by this many pixels left, right, up and down (0 = off).")
flags.DEFINE_bool("whitening", True, "Apply the checkpoint's within-class whitening (whitening.npz, fitted on its "
                  "training images by python -m siamjax.cli.whitening) where it has one; --nowhitening scores without.")
flags.DEFINE_bool("block_pooling", True, "Append the earlier block's pooled features that the checkpoint's "
                  "block_pooling.json names (python -m siamjax.cli.block_pooling) where it has one; --noblock_pooling "
                  "scores without.")
flags.DEFINE_list("knn", [], "Also report leave-one-out k-nearest-neighbour accuracy over all images of the "
                  "split for these k (e.g. 1,5): each image classified by a vote of its k most similar others.")
flags.DEFINE_bool("random_init", False, "Evaluate the checkpoint's architecture with freshly initialised weights "
                  "(seed --seed) instead of its trained ones: the baseline of an untrained encoder.")
flags.DEFINE_bool("traceback", False, "On an error, print the full Python traceback, not one line.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from siamjax.cli.errors import exit_on_user_error

    exit_on_user_error(evaluate_checkpoint, FLAGS.traceback)


def read_eval_data(spec):
    """(LabeledImages, description) of the data named by --data / --data_dir / --split."""
    from siamjax.data.sources import read_source

    default_dir = FLAGS["data_dir"].using_default_value
    if FLAGS.data == "omniglot":
        return read_source("omniglot", FLAGS.data_dir, FLAGS.split, spec, alphabets=FLAGS.alphabets or None), FLAGS.split
    if FLAGS.data == "folder":
        return read_source("folder", FLAGS.data_dir, "", spec, max_bad_fraction=FLAGS.max_bad_fraction), FLAGS.data_dir
    split = "test" if FLAGS.split == "evaluation" else FLAGS.split  # tfds and MNIST name their splits so
    if FLAGS.data == "mnist":
        data_dir = "../shared/data/mnist_test" if default_dir else FLAGS.data_dir
        return read_source("mnist", data_dir, split, spec), f"MNIST {split} ({data_dir})"
    return read_source(FLAGS.data, None if default_dir else FLAGS.data_dir, split, spec), f"{FLAGS.data} {split}"


def warn_about_training_classes(model, data) -> None:
    """A warning on stderr when some classes to be scored are classes the checkpoint trained on."""
    from siamjax.data.sources import training_class_names

    seen = set()
    for member in model.members:
        seen |= training_class_names(member.config, data, FLAGS.data, FLAGS.data_dir, FLAGS.split)
    overlap = sorted(seen & set(data.class_names))
    if overlap:
        print(f"WARNING: {len(overlap)} of the {data.num_classes} classes scored here are classes this checkpoint "
              f"was trained on (e.g. {', '.join(overlap[:3])}): the accuracy is not that of unseen classes; "
              "choose held-out ones with --classes", file=sys.stderr)


def evaluate_checkpoint():
    logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines off the console
    import jax.numpy as jnp

    import siamjax
    from siamjax.eval import episodes as evaluate

    model = siamjax.load(FLAGS.checkpoint, tta_shift=FLAGS.tta_shift, whitening=FLAGS.whitening,
                         block_pooling=FLAGS.block_pooling)
    if FLAGS.random_init:
        model = model.reinitialised(FLAGS.seed)
    members = model.members
    whitened = sum(m.whitening is not None for m in members)
    pooled = [m.block_pooling for m in members if m.block_pooling is not None]
    print(f"checkpoint: {model.path} (model={model.meta['model']['model']}, head={model.meta['model']['head']}, "
          + (f"RANDOM weights, seed {FLAGS.seed}" if FLAGS.random_init else f"step={model.meta.get('step')}")
          + (f", ensemble of {model.meta['ensemble']}: mean similarity" if model.meta.get("ensemble") else "")
          + (f", test-time shifts of {FLAGS.tta_shift} px" if FLAGS.tta_shift else "")
          + (f", within-class whitening ({whitened} of {len(members)})" if whitened else "")
          + (f", block {pooled[0].block} {pooled[0].pool}-pooled at weight {pooled[0].weight:g} "
             f"({len(pooled)} of {len(members)})" if pooled else "") + ")")
    results = {"checkpoint": str(model.path), "tta_shift": FLAGS.tta_shift, "random_init": FLAGS.random_init,
               "whitened_members": whitened, "block_pooled_members": len(pooled)}
    if FLAGS.lake_runs:
        from siamjax.data.lake_runs import read_runs
        r = evaluate.evaluate_lake_runs(model.embed, model.pairwise, read_runs(FLAGS.lake_runs))
        print(f"Lake runs: {r['runs']} runs, mean error {r['error']:.2f}% "
              f"(accuracy {100 * r['accuracy']:.2f}% +- {100 * r['ci95']:.2f}, {r['questions']} questions)")
        results["lake_runs"] = r
    else:
        tasks = evaluate.parse_tasks(FLAGS.tasks)
        t0 = time.time()
        data, what = read_eval_data(model.preprocessing)
        if FLAGS.classes:
            from siamjax.data.sources import keep_classes

            data = keep_classes(data, FLAGS.classes)
            what += f", classes {','.join(FLAGS.classes)}"
        warn_about_training_classes(model, data)
        t1 = time.time()
        emb = jnp.asarray(model.embed_preprocessed(data.images))
        t2 = time.time()
        classes, groups = ("characters", "alphabets") if FLAGS.data == "omniglot" else ("classes", "groups")
        print(f"{what}: {len(data)} images, {data.num_classes} {classes}, {data.num_groups} {groups} "
              f"(read {t1 - t0:.1f} s, embedded {t2 - t1:.1f} s)")
        results["tasks"] = []
        for protocol, ways, shots in tasks:
            # Omniglot's drawers are shared across classes (Lake's protocol); other data's are file ranks.
            eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways, shots,
                                         FLAGS.episodes, protocol, seed=FLAGS.seed,
                                         same_instance=FLAGS.data == "omniglot")
            pred = np.asarray(evaluate.episode_predictions(model.pairwise_jax, emb, eps))
            r = evaluate.accuracy_summary(pred, eps)
            r.update(protocol=protocol, shots=shots)
            if FLAGS.grid and not results["tasks"]:
                from siamjax.eval.task_grid import plot_task_grid

                title = f"{ways}-way {shots}-shot {protocol}"
                path = plot_task_grid(data.images, eps, pred, FLAGS.grid, FLAGS.grid_episodes, title=title,
                                      ink_high=model.preprocessing.invert is not False)  # polarity flipped: ink high
                print(f"task picture: {path}")
            results["tasks"].append(r)
            where = f"{protocol}-alphabet" if FLAGS.data == "omniglot" else f"{protocol}-group"
            print(f"{ways}-way {shots}-shot {where}: accuracy {100 * r['accuracy']:.2f}% "
                  f"+- {100 * r['ci95']:.2f} (95% CI, {r['questions']} questions in {r['episodes']} episodes)")
        if FLAGS.knn:
            ks = [int(k) for k in FLAGS.knn]
            t3 = time.time()
            knn = evaluate.knn_accuracy(model.pairwise_jax, emb, data.labels, ks)
            results["knn"] = {str(k): v for k, v in knn.items()}
            for k, r in knn.items():
                print(f"{k}-NN over all {r['questions']} images ({data.num_classes} {classes}, leave one out): "
                      f"accuracy {100 * r['accuracy']:.2f}% +- {100 * r['ci95']:.2f} ({time.time() - t3:.1f} s)")
    if FLAGS.out:
        pathlib.Path(FLAGS.out).write_text(json.dumps(results, indent=2))
    sys.stdout.flush()


def run(argv: list[str]) -> None:
    """Parse ``argv`` (program name first) and run; exits. ``--help`` lists this command's flags."""
    if any(a in ("-h", "--help", "--helpshort") for a in argv[1:]):
        print(__doc__ + "\nflags:\n" + FLAGS.module_help(sys.modules[__name__]))
        sys.exit(0)
    app.run(main, argv=argv)
