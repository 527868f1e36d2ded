"""``siamjax-eval SUBCOMMAND ...``: every evaluation of a trained model, one command.

  oneshot    N-way K-shot one-shot accuracy, k-NN, Lake runs (the default: ``siamjax-eval --checkpoint DIR``)
  pairs      ROC / EER / TAR@FAR on a pair list or on the classes of an image folder
  calibrate  fit decision thresholds (EER, FAR 1%, FAR 0.1%) on pairs and write calibration.json
  verify     same or different: two images, or a probe against an enrolled identity
  enrol      add images of an identity (or a folder of identities) to a gallery
  identify   rank a gallery's identities for a probe image
  enrolled   enrolled (writer-dependent) signature verification: enrol N genuine, verify the rest and forgeries
  track      SiamFC one-pass evaluation over OTB / GOT-10k sequence folders

``siamjax-eval SUBCOMMAND --help`` lists each one's flags.
"""
from __future__ import annotations

import sys

VERIFY = ("pairs", "calibrate", "verify", "enrol", "enroll", "identify")
SUBCOMMANDS = ("oneshot", *VERIFY, "enrolled", "track")


def usage() -> str:
    return __doc__.split("\n", 1)[1].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (without the program name; default ``sys.argv[1:]``) to a subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: siamjax-eval SUBCOMMAND [flags]\n\n" + usage())
        return 0 if argv else 2
    command = argv[0]
    if command in VERIFY:
        from siamjax.cli.verify import main as verify_main

        return verify_main(argv)
    if command == "enrolled":
        from siamjax.cli.enrolled import main as enrolled_main

        return enrolled_main(argv[1:])
    if command == "track":
        from siamjax.cli.track_eval import main as track_main

        return track_main(argv[1:])
    if command == "oneshot":
        argv = argv[1:]
    elif not command.startswith("-"):
        print(f"error: unknown subcommand {command!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    from siamjax.cli import oneshot

    oneshot.run(["siamjax-eval oneshot", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
