"""``siamjax-eval pairs | calibrate | verify | enrol | identify``: verification on pair lists, thresholds,
1:1 checks, and a gallery.

::

  siamjax-eval pairs --checkpoint DIR --pairs PAIRS.csv --root ROOT [--pair_filter REGEX] [--same_label 1]
                       [--threshold T] [--out_dir OUT]
  siamjax-eval pairs --checkpoint DIR --data_dir FOLDER_OR_ZIP --classes PATTERN [PATTERN ...] [--out_dir OUT]
  siamjax-eval verify --checkpoint DIR a.png b.png [--threshold T | --gallery G.npz]
  siamjax-eval verify --checkpoint DIR --gallery G.npz --identity NAME probe.png
  siamjax-eval enrol --checkpoint DIR --gallery G.npz --identity NAME img1.png img2.png ...
  siamjax-eval enrol --checkpoint DIR --gallery G.npz --folder FOLDER_OR_ZIP     (one identity per subfolder)
  siamjax-eval calibrate --checkpoint DIR (--pairs CSV --root ROOT | --data_dir D --classes P ...) [--far 0.01]
  siamjax-eval identify --checkpoint DIR --gallery G.npz probe.png [--k 5]

**Paths through a zip.** Every input path (``--pairs``, ``--root``, image arguments) may be a plain
file or folder, or run through a zip archive: ``data.zip/inner/folder`` names the folder
``inner/folder`` inside ``data.zip`` and ``data.zip/lists/pairs.csv`` a member. So the signature pair
list shipped inside its zip is read with
``--pairs sign_data_test.zip/sign_data/test_data.csv --root sign_data_test.zip/sign_data/Dataset/test``.
Members are read from the archive directly (nothing is extracted); names with an absolute path or a
``..`` component are refused, and in a plain folder a path that resolves outside ``--root`` is refused
(:mod:`siamjax.data.paths`).

**Pair lists.** CSV rows ``img1,img2,label`` (extra columns ignored; blank lines skipped); a first
row whose label is not a number is a header and skipped. Paths are relative to ``--root``. Labels:
``--same_label`` (default 1) marks genuine (same identity) pairs, the other value impostor pairs
(SigComp2011's ``test_data.csv`` uses 1 for forgeries: pass ``--same_label 0``). ``--pair_filter REGEX``
keeps the rows whose img1 path matches (``re.search``: ``^06[3-9]/`` keeps writers 063-069); parsing,
embedding and scoring in :mod:`siamjax.eval.pair_lists`.

**Classes of an image folder.** ``--data_dir`` (a class-per-subfolder folder or zip, see
:func:`siamjax.data.folder.load_image_folder`) with ``--classes`` (fnmatch patterns on class names,
e.g. ``'s3[1-9]' s40``): all unordered pairs of the selected images, genuine when both are of one class.

Each distinct image is decoded once (PIL, format and size checks of :mod:`siamjax.data.decode`),
preprocessed as the checkpoint's preprocessing says, embedded once; pairs are scored with the
model's head. A corrupt or missing image is an error naming it (and its row).

**Thresholds** (``verify`` with two images): ``--threshold``, else the gallery's (``--gallery``),
else ``calibration.json`` (``{"threshold": float, "far": float, "source": "..."}``) in the
``--checkpoint`` folder, the step folder it resolves to, or the step folder's parent / grandparent;
else an error asking for ``--threshold``.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import pathlib
import re
import sys
import time

import numpy as np

from siamjax.data.paths import Root, read_bytes, read_image
from siamjax.eval.pair_lists import embed_paths, parse_pairs, score_pairs

SUBCOMMANDS = ("pairs", "calibrate", "verify", "enrol", "enroll", "identify")
CALIBRATION_FILE = "calibration.json"


# ------------------------------------------------------------------------------------ commands
def _load_model(args):
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines off the console
    import siamjax

    model = siamjax.load(args.checkpoint)
    print(f"checkpoint: {model.path} (model={model.meta['model']['model']}, head={model.meta['model']['head']}, "
          f"step={model.meta.get('step')})")
    return model


def score_pair_source(args, model) -> tuple[np.ndarray, np.ndarray, dict, list, list, int]:
    """Scores of the pairs named by ``--pairs/--root`` or ``--data_dir/--classes``: (scores [P], genuine [P]
    bool, info for the report, first images' names, second images' names, number of images embedded)."""
    from siamjax.eval import verification as V

    t0 = time.time()
    info: dict = {"checkpoint": str(model.path)}
    if args.pairs is not None:
        data, where = read_bytes(args.pairs)
        a, b, same, lines = parse_pairs(data.decode("utf-8-sig"), where, args.same_label, args.pair_filter)
        root = Root(args.root)
        paths = list(dict.fromkeys(a + b))
        first_line = {}
        for p1, p2, ln in zip(a, b, lines):
            first_line.setdefault(p1, ln)
            first_line.setdefault(p2, ln)
        index = {p: k for k, p in enumerate(paths)}
        emb = embed_paths(model, root, paths, first_line, where)
        i = np.asarray([index[p] for p in a])
        j = np.asarray([index[p] for p in b])
        info.update(pairs=where, root=str(root), pair_filter=args.pair_filter, same_label=args.same_label)
        names1, names2 = a, b
    else:
        from siamjax.data.dataset import unknown_name_error
        from siamjax.data.folder import load_image_folder

        data = load_image_folder(args.data_dir, model.preprocessing, max_bad_fraction=args.max_bad_fraction)
        chosen = []
        for pat in args.classes:
            hit = [c for c, name in enumerate(data.class_names) if fnmatch.fnmatchcase(name, pat)]
            if not hit:
                raise unknown_name_error("class pattern", pat, data.class_names, f"in {args.data_dir}")
            chosen += hit
        chosen = sorted(set(chosen))
        if len(chosen) < 2:
            raise ValueError(f"--classes selects {len(chosen)} class ({data.class_names[chosen[0]]!r}); impostor "
                             f"pairs need at least 2")
        rows = np.flatnonzero(np.isin(data.labels, chosen))
        emb = model.embed_preprocessed(np.asarray(data.images[rows]))
        i, j, same = V.all_pairs(data.labels[rows])
        paths = [f"{data.class_names[data.labels[r]]}#{data.instances[r]}" for r in rows]
        names1, names2 = [paths[k] for k in i], [paths[k] for k in j]
        info.update(data_dir=str(args.data_dir), classes=[data.class_names[c] for c in chosen])
    t1 = time.time()
    scores = score_pairs(model, emb, i, j)
    print(f"{len(paths)} images embedded in {t1 - t0:.1f} s; {len(scores)} pairs scored")
    return scores, same, info, names1, names2, len(paths)


def check_pair_source(args) -> None:
    """ValueError unless exactly one pair source is given completely (before the model loads)."""
    if (args.pairs is None) == (args.data_dir is None):
        raise ValueError("give either --pairs CSV (with --root) or --data_dir FOLDER_OR_ZIP (with --classes)")
    if args.pairs is not None and args.root is None:
        raise ValueError("--pairs needs --root: the folder (or zip, or zip/inner/folder) its paths are relative to")
    if args.data_dir is not None and not args.classes:
        raise ValueError("--data_dir needs --classes PATTERN [PATTERN ...] (fnmatch patterns on class names)")


IDENTITY_REGEX = r"^([^#/]+?)(?:_forg)?(?:[#/]|$)"  # "s31#4" -> s31; "063_forg/x.png" and "063/y.png" -> 063


def identity_of(name: str, pattern: re.Pattern) -> str:
    """The identity a pair's image name belongs to: ``pattern``'s first group (the whole name without one)."""
    m = pattern.search(name)
    if not m:
        raise ValueError(f"--identity_regex {pattern.pattern!r} does not match the image name {name!r}")
    return m.group(1) if m.groups() else m.group(0)


def cmd_pairs(args) -> int:
    from siamjax.eval import verification as V

    check_pair_source(args)
    model = _load_model(args)
    scores, same, info, names1, names2, n_images = score_pair_source(args, model)
    report = V.verification_report(scores, same, args.threshold)
    print(V.format_report(report))
    identity = re.compile(args.identity_regex)
    ids1, ids2 = [identity_of(n, identity) for n in names1], [identity_of(n, identity) for n in names2]
    rows = V.per_identity(scores, same, ids1, ids2, args.threshold)
    print("per identity (an impostor pair counts for both of its identities):\n" + V.format_per_identity(rows))
    if args.out_dir:
        from siamjax.eval.plots import write_verification_plots

        out = pathlib.Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = write_verification_plots(scores, same, out, args.threshold)
        (out / "report.json").write_text(json.dumps({**info, "n_images": n_images, **report, "per_identity": rows},
                                                    indent=2))
        with open(out / "scores.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["img1", "img2", "genuine", "score"])
            w.writerows(zip(names1, names2, same.astype(int).tolist(), [f"{s:.6g}" for s in scores]))
        print(f"wrote {out / 'report.json'}, {out / 'scores.csv'}, " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_calibrate(args) -> int:
    """Fit the decision thresholds on scored pairs and write calibration.json (``verify`` and new galleries
    read it)."""
    from siamjax.eval.calibration import calibrate, describe

    check_pair_source(args)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.checkpoint) / CALIBRATION_FILE
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists (threshold {json.loads(out.read_text()).get('threshold')}); pass "
                              "--overwrite to replace it, or --out to write elsewhere")
    model = _load_model(args)
    scores, same, info, _, _, _ = score_pair_source(args, model)
    where = info.get("pairs") or f"{info.get('data_dir')} classes {' '.join(info.get('classes', []))}"
    record = calibrate(scores, same, far=args.far, source=f"siamjax-eval calibrate on {where}")
    record["checkpoint"] = str(model.path)
    print(describe(record))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def find_calibration(checkpoint_arg, step_dir) -> tuple[dict, pathlib.Path] | None:
    """calibration.json beside the checkpoint: in the --checkpoint folder, the step folder, or the step
    folder's parent / grandparent (first found). Validated: ``threshold`` must be a number."""
    cands = [pathlib.Path(checkpoint_arg)]
    if step_dir is not None:
        step_dir = pathlib.Path(step_dir)
        cands += [step_dir, step_dir.parent, step_dir.parent.parent]
    seen = set()
    for c in cands:
        f = c / CALIBRATION_FILE
        if f in seen:
            continue
        seen.add(f)
        if f.is_file():
            try:
                cal = json.loads(f.read_text())
                thr = float(cal["threshold"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{f} is not a valid calibration file (expected {{\"threshold\": float, "
                                 f"\"far\": float, \"source\": \"...\"}}): {type(e).__name__}: {e}") from None
            if not np.isfinite(thr):
                raise ValueError(f"{f}: threshold {thr} is not finite")
            return {**cal, "threshold": thr}, f
    return None


def _describe_threshold(thr, far, source) -> str:
    return f"threshold {thr:.4g}" + (f" (FAR {far:g})" if far is not None else "") + (f" from {source}" if source else "")


def _open_gallery(path, model, must_exist=True):
    from siamjax.eval.gallery import Gallery

    p = pathlib.Path(path)
    if not p.exists():
        if must_exist:
            raise FileNotFoundError(f"gallery {p} does not exist; create it with: siamjax-eval enrol --checkpoint ... "
                                    f"--gallery {p} --identity NAME images...")
        return None
    return Gallery.load(p, model)


def cmd_verify(args) -> int:
    if args.identity is not None:
        if args.gallery is None or len(args.images) != 1:
            raise ValueError("verify --identity NAME needs --gallery G.npz and exactly one probe image")
    elif len(args.images) != 2:
        raise ValueError(f"verify takes two images (or one probe with --gallery and --identity), got {len(args.images)}")
    model = _load_model(args)
    imgs = [read_image(p) for p in args.images]
    gallery = _open_gallery(args.gallery, model) if args.gallery else None
    if args.identity is not None:
        score = float(gallery.score(imgs[0], [args.identity])[0])
        what = f"{args.images[0]} vs identity {args.identity!r} ({len(gallery.embeddings(args.identity))} enrolled, " \
               f"rule {gallery.rule})"
    else:
        score = float(model.score(imgs[:1], imgs[1:])[0])
        what = f"{args.images[0]} vs {args.images[1]}"
    if args.threshold is not None:
        thr, desc = args.threshold, _describe_threshold(args.threshold, None, "--threshold")
    elif gallery is not None and gallery.threshold is not None:
        thr, desc = gallery.threshold, _describe_threshold(gallery.threshold, gallery.far, f"gallery {args.gallery}")
    else:
        found = find_calibration(args.checkpoint, model.path)
        if found is None:
            raise ValueError(f"no decision threshold: pass --threshold T, or a --gallery with one, or put "
                             f"{CALIBRATION_FILE} ({{\"threshold\": ..., \"far\": ...}}) in {args.checkpoint} "
                             f"(score was {score:.6g})")
        cal, f = found
        thr, desc = cal["threshold"], _describe_threshold(cal["threshold"], cal.get("far"), str(f))
    same = score >= thr
    print(f"{what}: score {score:.6g}")
    print(f"decision: {'SAME (accept)' if same else 'DIFFERENT (reject)'} — {desc}")
    return 0


def cmd_enrol(args) -> int:
    from siamjax.eval.gallery import Gallery

    if (args.folder is None) == (args.identity is None) or (args.identity is not None and not args.images):
        raise ValueError("enrol takes --identity NAME with its images, or --folder FOLDER_OR_ZIP (one identity per "
                         "subfolder)")
    if args.folder is not None and args.images:
        raise ValueError("enrol --folder takes no image arguments: every image of the folder is enrolled")
    model = _load_model(args)
    gallery = _open_gallery(args.gallery, model, must_exist=False)
    created = gallery is None
    if created:
        gallery = Gallery(model, rule=args.rule)
        found = find_calibration(args.checkpoint, model.path)
        if found is not None:
            cal, f = found
            gallery.threshold, gallery.far = cal["threshold"], cal.get("far")
            gallery.threshold_source = f"{f}" + (f": {cal['source']}" if cal.get("source") else "")
    if args.threshold is not None:
        gallery.threshold, gallery.far, gallery.threshold_source = args.threshold, args.far, "--threshold"
    if args.folder is not None:
        from siamjax.data.folder import load_image_folder

        data = load_image_folder(args.folder, model.preprocessing, max_bad_fraction=args.max_bad_fraction,
                                 min_images_per_class=1)
        emb = model.embed_preprocessed(np.asarray(data.images))
        for c, name in enumerate(data.class_names):
            gallery.enrol(name, embeddings=emb[data.labels == c])
        what = f"{len(data)} image(s) of {data.num_classes} identities from {args.folder}"
    else:
        imgs = [read_image(p) for p in args.images]
        n = gallery.enrol(args.identity, images=imgs)
        what = f"{len(imgs)} image(s) for {args.identity!r} ({n} in all)"
    gallery.save(args.gallery)
    thr = "no threshold yet (pass --threshold)" if gallery.threshold is None else \
        _describe_threshold(gallery.threshold, gallery.far, gallery.threshold_source)
    print(f"enrolled {what}; gallery {args.gallery} "
          f"{'created' if created else 'updated'}: {len(gallery)} {'identity' if len(gallery) == 1 else 'identities'}; {thr}")
    return 0


def cmd_identify(args) -> int:
    model = _load_model(args)
    gallery = _open_gallery(args.gallery, model)
    img = read_image(args.image)
    ranked = gallery.identify(img, args.k)
    thr = args.threshold if args.threshold is not None else gallery.threshold
    print(f"{args.image}: top {len(ranked)} of {len(gallery)} identities (rule {gallery.rule})")
    for r, (name, s) in enumerate(ranked, 1):
        mark = "" if thr is None else ("  >= threshold" if s >= thr else "")
        print(f"{r:3d}. {name}  {s:.6g}{mark}")
    if thr is not None:
        best, s = ranked[0]
        print(f"decision: {best!r}" if s >= thr else "decision: no enrolled identity (best score below threshold)",
              f"— threshold {thr:.4g}")
    return 0


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamjax-eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--checkpoint", required=True, help="training workdir, manager folder or step folder")
        sp.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")

    def pair_source(sp):
        sp.add_argument("--pairs", help="CSV of img1,img2,label (a file, or a member: data.zip/inner/pairs.csv)")
        sp.add_argument("--root", help="folder, zip or zip/inner/folder that the CSV's paths are relative to")
        sp.add_argument("--pair_filter", help="keep rows whose img1 path matches this regex (re.search)")
        sp.add_argument("--same_label", type=int, default=1, choices=(0, 1),
                        help="the CSV label value of genuine (same identity) pairs (default 1)")
        sp.add_argument("--data_dir", help="class-per-subfolder folder or zip (instead of --pairs)")
        sp.add_argument("--classes", nargs="+", help="fnmatch patterns of the --data_dir classes to pair up")
        sp.add_argument("--max_bad_fraction", type=float, default=0.01, help="--data_dir: unreadable files tolerated")

    sp = sub.add_parser("calibrate", help="fit decision thresholds (EER, FAR 1%%, FAR 0.1%%) on pairs of validation "
                                          "identities and write calibration.json")
    common(sp)
    pair_source(sp)
    sp.add_argument("--far", type=float, help="decide at the lowest threshold whose FAR is at most this (e.g. 0.01); "
                                              "default: at the equal error rate")
    sp.add_argument("--out", help=f"where to write (default: CHECKPOINT/{CALIBRATION_FILE}, where verify and enrol "
                                  "look for it)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    sp.set_defaults(fn=cmd_calibrate)

    sp = sub.add_parser("pairs", help="ROC / EER / TAR@FAR on a pair list or on the classes of an image folder")
    common(sp)
    pair_source(sp)
    sp.add_argument("--threshold", type=float, help="also report FAR / FRR / accuracy at this score threshold")
    sp.add_argument("--out_dir", help="write roc.png, det.png, scores_hist.png, report.json, scores.csv here")
    sp.add_argument("--identity_regex", default=IDENTITY_REGEX,
                    help="per-identity table: the identity of an image is this regex's first group on its name "
                         "(default: the class before '#', or a pair list's first folder without '_forg')")
    sp.set_defaults(fn=cmd_pairs)

    sp = sub.add_parser("verify", help="same or different: two images, or a probe against an enrolled identity")
    common(sp)
    sp.add_argument("images", nargs="+", help="two images (or one probe with --identity)")
    sp.add_argument("--threshold", type=float, help="accept when score >= threshold")
    sp.add_argument("--gallery", help="gallery .npz: its threshold, and the identity for --identity")
    sp.add_argument("--identity", help="verify the probe against this enrolled identity")
    sp.set_defaults(fn=cmd_verify)

    for name in ("enrol", "enroll"):
        sp = sub.add_parser(name, help="add images of an identity to a gallery (created if missing)")
        common(sp)
        sp.add_argument("--gallery", required=True, help="gallery .npz to create or update")
        sp.add_argument("--identity", help="the identity the images show")
        sp.add_argument("images", nargs="*", help="its images (with --identity)")
        sp.add_argument("--folder", help="instead: a class-per-subfolder folder or zip; each subfolder is one "
                                         "identity, named after it, enrolled with all its images")
        sp.add_argument("--max_bad_fraction", type=float, default=0.01, help="--folder: unreadable files tolerated")
        sp.add_argument("--threshold", type=float, help="set the gallery's decision threshold")
        sp.add_argument("--far", type=float, help="the FAR that --threshold was calibrated for (recorded)")
        sp.add_argument("--rule", default="max", choices=("max", "mean", "template"),
                        help="new gallery: score = max / mean similarity over the identity's images, or "
                             "similarity to their mean embedding")
        sp.set_defaults(fn=cmd_enrol)

    sp = sub.add_parser("identify", help="rank the gallery's identities for a probe image")
    common(sp)
    sp.add_argument("--gallery", required=True)
    sp.add_argument("image")
    sp.add_argument("--k", type=int, default=5, help="how many identities to list")
    sp.add_argument("--threshold", type=float, help="override the gallery's threshold")
    sp.set_defaults(fn=cmd_identify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand (``argv`` without the program name); user errors -> one line on stderr, status 1."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from siamjax.cli.errors import status_on_user_error

    status = status_on_user_error(lambda: args.fn(args), args.traceback)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
