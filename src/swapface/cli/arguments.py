"""FaceFusion's way of writing lists on the command line: ``--processors face_swapper face_enhancer``.

Click takes one value per flag, so before parsing, the words that follow a list flag (up to the next
flag) are turned into repeated flags: ``--face-mask-types box occlusion`` reads as
``--face-mask-types box --face-mask-types occlusion``. Commas keep working (the options model splits them).
"""

from __future__ import annotations

from collections.abc import Sequence

from swapface.cli.options import list_option_flags

# Commands whose flags include the swap options (and ``-s/--source``, which takes several photos).
COMMANDS_WITH_LISTS = {"run": ("--source", "-s")}


def regroup_list_values(args: Sequence[str]) -> list[str]:
    """``args`` with every list flag's extra words turned into repeated flags (other commands untouched)."""
    args = list(args)
    if not args or args[0] not in COMMANDS_WITH_LISTS:
        return args
    flags = set(list_option_flags()) | set(COMMANDS_WITH_LISTS[args[0]])
    out = [args[0]]
    current: str | None = None  # the list flag whose values are being read
    taken = 0
    for word in args[1:]:
        if word == "--":
            current = None
            out.append(word)
        elif word.startswith("-") and not _is_number(word):
            current, taken = (word if word in flags else None), 0
            out.append(word)
        elif current is not None:
            if taken:
                out.append(current)
            out.append(word)
            taken += 1
        else:
            out.append(word)
    return out


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
