"""Print the agent's pip requirements minus what the Debian package takes from Debian.

    python3 firmware_config/deb/requirements.py pyproject.toml EXTRA...

Reads the extras named (``agent``; following ``doorwatch[...]`` references)
so the package's list never drifts from pyproject.toml.
"""

from __future__ import annotations

import re
import sys
import tomllib

# Debian packages the .deb depends on instead (python3-numpy, python3-opencv,
# python3-numba: numba's llvmlite is built against one numpy, Debian's).
FROM_DEBIAN = {"numpy", "opencv-python-headless", "opencv-python", "numba", "llvmlite"}


def requirements(extras: dict[str, list[str]], name: str, seen: set[str]) -> list[str]:
    """The requirements of extra ``name``, with nested ``doorwatch[x]`` expanded."""
    out: list[str] = []
    for item in extras[name]:
        nested = re.fullmatch(r"doorwatch\[([a-z,]+)\]", item)
        if nested:
            for sub in nested.group(1).split(","):
                if sub not in seen:
                    seen.add(sub)
                    out += requirements(extras, sub, seen)
        else:
            out.append(item)
    return out


def main() -> None:
    """Write the list to stdout."""
    with open(sys.argv[1], "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = list(project["dependencies"])
    seen = set(sys.argv[2:])
    for extra in sys.argv[2:]:
        wanted += requirements(project["optional-dependencies"], extra, seen)
    for item in dict.fromkeys(wanted):
        name = re.split(r"[<>=!~\[; ]", item, maxsplit=1)[0].lower()
        if name not in FROM_DEBIAN:
            print(item)


if __name__ == "__main__":
    main()
