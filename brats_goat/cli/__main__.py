"""``python -m brats_goat.cli``: the ``brats-goat`` command without its installed script."""

from brats_goat.cli.main import main

if __name__ == "__main__":  # pragma: no cover - exercised through `python -m`
    main()
