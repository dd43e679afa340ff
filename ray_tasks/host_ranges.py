"""Host lists folded into ranges, as ClusterShell's ``nodeset -f`` and ``dshbak -c`` write
them: ``node1 node2 node3 node7`` is ``node[1-3,7]``, ``10.0.0.1 .. 10.0.0.32`` is
``10.0.0.[1-32]``. No I/O.

A name is folded on its last run of digits before any ``:port`` (``root@10.0.0.[1-3]:2222``):
names with the same text before and after it form one group. Numbers keep how they are
written (``n[01-10]``); a range runs on only between numbers of one width or none
zero-padded; a name without digits stays as it is.
"""

import re

_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\]?(?::\d+)?\D*)$")


def _split(name):
    """(prefix, suffix) and the digits between them (None for a name without digits)."""
    match = _LAST_NUMBER.match(name)
    if not match:
        return (name, ""), None
    prefix, digits, suffix = match.groups()
    return (prefix, suffix), digits


def _follows(previous, digits):
    """Whether ``digits`` continue a range ending at ``previous``: the next number, written
    as wide (``09``, ``10``) or neither zero-padded (``9``, ``10``)."""
    padded = previous.startswith("0") or digits.startswith("0")
    same_style = len(digits) == len(previous) or not padded
    return int(digits) == int(previous) + 1 and same_style


def _ranges(numbers):
    """The digit strings ``numbers`` as ranges: ``1,2,3,7`` is ``1-3,7``, ``01,02`` is
    ``01-02``."""
    spans = []
    for digits in sorted(set(numbers), key=lambda each: (int(each), len(each))):
        if spans and _follows(spans[-1][1], digits):
            spans[-1][1] = digits
        else:
            spans.append([digits, digits])
    return ",".join(start if start == end else f"{start}-{end}" for start, end in spans)


def fold(names):
    """``names`` (strings) as one folded list: the groups in the order each first appears,
    comma-separated."""
    groups = {}
    for name in names:
        key, digits = _split(str(name))
        groups.setdefault(key, []).append(digits)
    folded = []
    for (prefix, suffix), numbers in groups.items():
        if numbers[0] is None:
            folded.append(prefix)
        elif len(set(numbers)) == 1:
            folded.append(f"{prefix}{numbers[0]}{suffix}")
        else:
            folded.append(f"{prefix}[{_ranges(numbers)}]{suffix}")
    return ",".join(folded)
