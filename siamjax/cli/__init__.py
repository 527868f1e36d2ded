"""The commands: ``siamjax-train``, ``siamjax-eval`` (subcommands) and ``siamjax-track``, and tools."""
