"""``siamjax-eval enrolled``: enrolled (writer-dependent) signature verification.

::

  siamjax-eval enrolled --checkpoint DIR --data_dir FOLDER_OR_ZIP [--classes PATTERN ...]
                        [--val_data_dir FOLDER_OR_ZIP] [--val_classes PATTERN ...]
                        [--refs 5,3,1] [--normalise refs,none] [--rule max] [--out_dir OUT]

For every writer of ``--data_dir`` (folders ``<W>/`` genuine, ``<W>_forg/`` skilled forgeries; a
folder, a zip or ``data.zip/inner/folder``), the first N genuine signatures by file name are enrolled
in a :class:`~siamjax.eval.gallery.Gallery` as identity W; the other genuine signatures (genuine
trials) and every forgery of W (impostor trials) are verified against W
(:mod:`siamjax.eval.enrolled`). The pooled EER over the writers is reported, with each writer's EER.

A global threshold is fitted on the validation writers (``--val_classes`` of ``--val_data_dir``,
default: the same folder; the same protocol): their pooled EER threshold, applied to the test
writers, where FAR and FRR are reported. Without ``--classes`` / ``--val_classes`` the checkpoint's
config decides (``data.holdout_classes`` / ``data.val_classes``, forgery folders' patterns dropped);
without test patterns, every writer that is not a validation writer is a test writer; without
validation writers there is no threshold.

``--normalise`` lists the per-identity score normalisations to run (:class:`Gallery`'s ``normalise``:
``none``, ``refs``, ``znorm``); with several, the one with the lowest validation EER is marked
recommended for each N. ``--out_dir`` gets ``report.json``, ``writers.csv``, ``writers.md`` and, per
setting, ``refsN_NORM/{roc,det,scores_hist}.png`` of the test trials.
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys
import time

import numpy as np

from siamjax.data.paths import Root
from siamjax.eval import enrolled as E
from siamjax.eval.pair_lists import embed_paths
from siamjax.eval.gallery import NORMALISATIONS

DEFAULT_NORMALISE = "refs,none"


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, got {text!r}")
    return list(dict.fromkeys(vals))


def _norm_list(text: str) -> list[str]:
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in NORMALISATIONS]
    if not vals or bad:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(NORMALISATIONS)} (comma-separated), got {text!r}")
    return list(dict.fromkeys(vals))


def list_paths(root: Root) -> list[str]:
    """Every file below ``root`` as a '/'-separated relative path."""
    if root.members is not None:
        return [n[len(root.prefix):] for n in root.members if n.startswith(root.prefix)]
    return ["/".join(e.parts) for e in root.src.list().files]


def embed_files(model, root: Root, paths: list[str]) -> dict[str, np.ndarray]:
    """Decode, preprocess (the checkpoint's preprocessing) and embed each path once -> {path: [D]}."""
    return dict(zip(paths, np.asarray(embed_paths(model, root, paths), np.float32)))


def _config_patterns(model, key: str, suffix: str) -> list[str] | None:
    try:
        pats = list(getattr(model.config.data, key) or ())
    except (AttributeError, KeyError, ValueError):
        return None
    pats = [p for p in pats if not p.endswith(suffix)]
    return list(dict.fromkeys(pats)) or None


def _split(args, model, data_dir, patterns, cfg_key, role):
    """(samples, writers, source description) of one split; ``patterns`` None -> the config's."""
    root = Root(data_dir)
    samples = E.parse_layout(list_paths(root), args.forgery_suffix)
    if patterns is None:
        patterns = _config_patterns(model, cfg_key, args.forgery_suffix)
        if patterns is not None:
            print(f"{role} writers: patterns {' '.join(patterns)} from the checkpoint's config data.{cfg_key}")
    return root, samples, E.select_writers(samples, patterns, str(data_dir)), patterns is None


def _fmt(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def write_tables(results: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
    """writers.csv (one row per setting and writer) and writers.md (summary + per-writer tables)."""
    ok = [r for r in results if "test" in r]
    with open(out / "writers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["refs", "normalise", "writer", "n_genuine", "n_forgery", "eer", "auc", "far_at_val_threshold",
                    "frr_at_val_threshold", "genuine_mean", "forgery_mean"])
        for r in ok:
            for row in r["test"]["writers"]:
                w.writerow([r["refs"], r["normalise"], row["writer"], row["n_genuine"], row["n_forgery"],
                            f"{row['eer']:.6g}", f"{row['auc']:.6g}", "" if "far" not in row else f"{row['far']:.6g}",
                            "" if "frr" not in row else f"{row['frr']:.6g}", f"{row['genuine_mean']:.6g}",
                            f"{row['forgery_mean']:.6g}"])
    lines = ["| refs | normalise | validation EER | test EER (pooled) | test AUC | mean writer EER | "
             "test FAR / FRR at the validation threshold |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in ok:
        p, v = r["test"]["pooled"], r.get("validation")
        at = f"{_fmt(p['far'])} / {_fmt(p['frr'])} (threshold {r['threshold']:.4g})" if "far" in p else "-"
        mark = " (recommended)" if r.get("recommended") else ""
        lines.append(f"| {r['refs']} | {r['normalise']}{mark} | {_fmt(v['pooled']['eer']) if v else '-'} | "
                     f"{_fmt(p['eer'])} | {p['auc']:.3f} | {_fmt(r['test']['mean_writer_eer'])} | {at} |")
    writers = [row["writer"] for row in ok[0]["test"]["writers"]] if ok else []
    per_n: dict[int, dict] = {}  # one setting per N: a writer's EER is the same under every normalisation
    for r in ok:  # (each one is an increasing affine map of that writer's scores)
        per_n.setdefault(r["refs"], r)
    lines += ["", "Per-writer EER (any normalisation; genuine probes / forgeries in brackets, for N = "
              + ", ".join(str(n) for n in per_n) + "):", "",
              "| writer | " + " | ".join(f"N={n}" for n in per_n) + " |", "| --- |" + " --- |" * len(per_n)]
    for k, name in enumerate(writers):
        counts = ", ".join(f"{r['test']['writers'][k]['n_genuine']}" for r in per_n.values())
        lines.append(f"| {name} ({counts} / {ok[0]['test']['writers'][k]['n_forgery']}) | "
                     + " | ".join(_fmt(r["test"]["writers"][k]["eer"]) for r in per_n.values()) + " |")
    if ok and "far" in ok[0]["test"]["pooled"]:
        lines += ["", "Per-writer FAR / FRR at the validation threshold:", "",
                  "| writer | " + " | ".join(f"N={r['refs']} {r['normalise']}" for r in ok) + " |",
                  "| --- |" + " --- |" * len(ok)]
        for k, name in enumerate(writers):
            lines.append(f"| {name} | " + " | ".join(
                f"{_fmt(r['test']['writers'][k]['far'])} / {_fmt(r['test']['writers'][k]['frr'])}" for r in ok) + " |")
    (out / "writers.md").write_text("\n".join(lines) + "\n")
    return [out / "writers.csv", out / "writers.md"]


def cmd_enrolled(args) -> int:
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    import siamjax

    t0 = time.time()
    model = siamjax.load(args.checkpoint)
    print(f"checkpoint: {model.path} (model={model.meta['model']['model']}, head={model.meta['model']['head']}, "
          f"step={model.meta.get('step')})")
    root, samples, writers, every = _split(args, model, args.data_dir, args.classes, "holdout_classes", "test")
    val_dir = args.val_data_dir or args.data_dir
    val_patterns = args.val_classes
    val = None
    if val_patterns is not None or args.val_data_dir or _config_patterns(model, "val_classes", args.forgery_suffix):
        val = _split(args, model, val_dir, val_patterns, "val_classes", "validation")
        same_dir = str(val_dir) == str(args.data_dir)
        if every and same_dir:  # no test patterns anywhere: every writer that does not validate
            writers = [w for w in writers if w not in set(val[2])]
            if not writers:
                raise ValueError(f"every writer of {args.data_dir} is a validation writer; pass --classes")
        overlap = sorted(set(val[2]) & set(writers)) if same_dir else []
        if overlap:
            raise ValueError(f"writers {', '.join(overlap)} are both test and validation writers; choose disjoint "
                             f"--classes and --val_classes")
    nmax = max(args.refs)
    test_trials = {n: E.build_trials(samples, n, writers) for n in args.refs}  # checks every writer first
    val_trials = {n: E.build_trials(val[1], n, val[2]) for n in args.refs} if val else {}
    emb = embed_files(model, root, sorted({s.path for s in samples if s.writer in writers}))
    val_emb = embed_files(model, val[0], sorted({s.path for s in val[1] if s.writer in val[2]})) if val else {}
    print(f"test writers {', '.join(writers)}: {len(emb)} images"
          + (f"; validation writers {', '.join(val[2])}: {len(val_emb)} images" if val else "; no validation writers")
          + f"; embedded in {time.time() - t0:.1f} s")

    results, scores = [], {}
    for n in args.refs:
        for norm in args.normalise:
            r: dict = {"refs": n, "normalise": norm}
            kw = dict(pairwise=model.pairwise, rule=args.rule, normalise=norm, min_std=args.min_std)
            try:
                thr = None
                if val:
                    vs, _ = E.score_trials(val_trials[n], val_emb, **kw)
                    r["validation"] = E.summarise(vs)
                    thr = r["validation"]["pooled"]["eer_threshold"]
                    r["threshold"] = thr
                ts, _ = E.score_trials(test_trials[n], emb, **kw)
            except ValueError as e:  # e.g. 'refs' with one reference
                r["skipped"] = str(e)
                print(f"N={n} normalise={norm}: skipped ({e})")
                results.append(r)
                continue
            r["test"] = E.summarise(ts, thr)
            scores[(n, norm)] = (ts, thr)
            results.append(r)
    for n in args.refs:
        done = [r for r in results if r["refs"] == n and "validation" in r and "test" in r]
        if done:
            min(done, key=lambda r: (r["validation"]["pooled"]["eer"], r["normalise"] != "none"))["recommended"] = True

    print(f"\n{'N':>3} {'normalise':<9} {'val EER':>8} {'test EER':>9} {'AUC':>6} {'writer-mean':>11}  "
          f"FAR / FRR at the validation threshold")
    for r in results:
        if "test" not in r:
            continue
        p, v = r["test"]["pooled"], r.get("validation")
        at = f"{_fmt(p['far'])} / {_fmt(p['frr'])} (threshold {r['threshold']:.4g})" if "far" in p else "-"
        print(f"{r['refs']:>3} {r['normalise']:<9} {_fmt(v['pooled']['eer']) if v else '-':>8} {_fmt(p['eer']):>9} "
              f"{p['auc']:6.3f} {_fmt(r['test']['mean_writer_eer']):>11}  {at}{'  *' if r.get('recommended') else ''}")
    if any(r.get("recommended") for r in results):
        print("(* lowest validation EER for its N: the recommended normalisation)")
    best = [r for r in results if r["refs"] == nmax and "test" in r]
    if best:
        pick = next((r for r in best if r.get("recommended")), best[0])
        print(f"\nper writer, N={nmax} normalise={pick['normalise']}:")
        for row in pick["test"]["writers"]:
            at = f"  FAR {_fmt(row['far'])} FRR {_fmt(row['frr'])}" if "far" in row else ""
            print(f"  {row['writer']}: EER {_fmt(row['eer'])} ({row['n_genuine']} genuine, {row['n_forgery']} "
                  f"forgeries){at}")

    if args.out_dir:
        from siamjax.eval.plots import write_verification_plots

        out = pathlib.Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = {"checkpoint": str(model.path), "data_dir": str(args.data_dir), "writers": writers,
                  "val_data_dir": str(val_dir) if val else None, "val_writers": val[2] if val else [],
                  "rule": args.rule, "min_std": args.min_std, "refs": args.refs, "normalise": args.normalise,
                  "protocol": "first N genuine by file name enrolled per writer; other genuine + all forgeries "
                              "probed against it; threshold = validation writers' pooled EER threshold",
                  "results": results}
        (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        files = [out / "report.json", *write_tables(results, out)]
        for (n, norm), (ts, thr) in scores.items():
            s, y = E.pooled(ts)
            written = write_verification_plots(s, y, out / f"refs{n}_{norm}", thr,
                                               title=f"enrolled, N={n}, {norm}")
            files += list(written.values())
        print(f"\nwrote {len(files)} files to {out}: report.json, writers.csv, writers.md, refsN_NORM/*.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siamjax-eval enrolled", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--checkpoint", required=True, help="training workdir, manager folder or step folder")
    p.add_argument("--data_dir", required=True, help="folder, zip or zip/inner/folder with <writer>/ and "
                                                    "<writer>_forg/ subfolders (the test writers)")
    p.add_argument("--classes", nargs="+", help="fnmatch patterns of the test writers (default: the config's "
                                                "data.holdout_classes, else every writer)")
    p.add_argument("--val_data_dir", help="where the validation writers are (default: --data_dir)")
    p.add_argument("--val_classes", nargs="+", help="fnmatch patterns of the validation writers, whose pooled EER "
                                                    "threshold is applied to the test writers (default: the "
                                                    "config's data.val_classes)")
    p.add_argument("--refs", type=_int_list, default=[5, 3, 1], help="numbers of enrolled references (default 5,3,1)")
    p.add_argument("--normalise", type=_norm_list, default=_norm_list(DEFAULT_NORMALISE),
                   help=f"per-identity score normalisations, comma-separated, from {', '.join(NORMALISATIONS)} "
                        f"(default {DEFAULT_NORMALISE}: refs had the lowest validation EER for N = 5 and 3 with "
                        f"pretrained/signatures; none beside it, and alone for N = 1)")
    p.add_argument("--rule", default="max", choices=("max", "mean", "template"), help="gallery rule (default max)")
    p.add_argument("--min_std", type=float, default=0.01, help="smallest spread a normalisation divides by")
    p.add_argument("--forgery_suffix", default=E.FORGERY_SUFFIX, help="folder suffix of a writer's forgeries")
    p.add_argument("--out_dir", help="write report.json, writers.csv, writers.md and ROC / DET plots here")
    p.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")
    return p


def main(argv: list[str] | None = None) -> int:
    """``argv`` without the program name and without the subcommand; user errors -> one line, status 1."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from siamjax.cli.errors import status_on_user_error

    status = status_on_user_error(lambda: cmd_enrolled(args), args.traceback)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
