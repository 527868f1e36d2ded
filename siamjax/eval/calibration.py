"""Decision thresholds fitted on scored pairs: what ``calibration.json`` holds.

A verifier accepts a pair when ``score >= threshold``. :func:`calibrate` fits the thresholds a user
picks from (at the equal error rate, and at false accept rates of 1% and 0.1%) on genuine and impostor
pairs (ideally of validation identities, never the test ones) and names the one used for decisions.
Rates are fractions in [0, 1].
"""
from __future__ import annotations

import math

from siamjax.eval import verification as V

FARS = (1e-2, 1e-3)


def calibrate(scores, labels, far: float | None = None, source: str = "") -> dict:
    """scores [P] float, labels [P] bool (True = genuine) -> the calibration record (JSON-ready):

    ``threshold`` (the decision threshold: the EER threshold, or with ``far`` the lowest threshold whose
    false accept rate on these pairs is at most ``far``), ``far`` / ``frr`` measured at it, ``eer``,
    ``thresholds`` ({"eer": t, "far=1e-2": t, "far=1e-3": t}), ``n_genuine``, ``n_impostor``, ``source``
    and ``resolvable`` (False when a FAR target needs more impostor pairs than there are: then its
    threshold is the one for FAR = 0 on these pairs)."""
    report = V.verification_report(scores, labels, fars=FARS)
    thresholds = {"eer": report["eer_threshold"]}
    thresholds.update({f"far={V.far_key(f)}": report[f"threshold@far={V.far_key(f)}"] for f in FARS})
    if far is None:
        threshold, rule = report["eer_threshold"], "the equal-error-rate threshold"
    else:
        threshold, rule = V.threshold_at_far(scores, labels, far, warn=False), f"the threshold for FAR <= {far:g}"
    at = V.rates_at(scores, labels, threshold)
    targets = FARS + ((far,) if far is not None else ())
    return {"threshold": threshold, "far": at["far"], "frr": at["frr"], "eer": report["eer"],
            "thresholds": thresholds, "n_genuine": report["n_genuine"], "n_impostor": report["n_impostor"],
            "resolvable": {f"far={V.far_key(f)}": V.resolvable(f, report["n_impostor"]) for f in targets},
            "source": f"{rule} on {report['n_genuine']} genuine and {report['n_impostor']} impostor pairs"
                      + (f": {source}" if source else "")}


def describe(record: dict) -> str:
    """A few lines for the terminal (rates in percent)."""
    lines = [f"decision threshold {record['threshold']:.6g}: FAR {100 * record['far']:.2f}%, "
             f"FRR {100 * record['frr']:.2f}% on these pairs (EER {100 * record['eer']:.2f}%)"]
    for name, t in record["thresholds"].items():
        ok = record["resolvable"].get(name, True)
        lines.append(f"  threshold at {name.replace('far=', 'FAR ')}: {t:.6g}" + (
            "" if ok else f" (needs >= {math.ceil(1 / float(name.split('=')[1]))} impostor pairs: FAR 0's threshold)"))
    return "\n".join(lines)
