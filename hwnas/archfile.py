"""Architectures from any file hwnas writes, and from the seeds' own formats.

Every ``--arch FILE`` goes through here, so whatever hwnas writes that holds an architecture is
read back the same way:

* an architecture's own JSON (``{"space": ..., ...}``, as ``Arch.to_dict`` writes it);
* ``hwnas search --out`` (``{"best": {"arch": ...}, ...}``);
* the supernet search's ``arch.json`` and the per-device files of a multi-device search
  (``{"arch": ..., ...}``);
* a records file (every subnet it holds) and a pools file (every member of every level);
* the seeds' formats the space has a codec for (ElasticViT's list, ViTAS rows, a ViT-ResNAS
  ``network_def`` as Python text, a TF-NAS config, NAS-Bench-201's cell string as raw text or
  a JSON string, FBNet's list of 22 block names or, with ``--space fbnet``, its op_idx_list).

The space is the one named on the command line, else the one the file names (or whose native
form it unmistakably is), else ElasticViT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import ArchError

DEFAULT_SPACE = "elasticvit"
RECORDS_TAG = "hwnas-records"  # latency/records.py
MODEL_FILE_SPACE = "model-file"  # records of any model (anymodel/model.py): not architectures
POOLS_TAG = "hwnas-supernet-pools"  # supernet/pools.py (not imported: it pulls in torch)


@dataclass(frozen=True)
class ArchFile:
    space: object  # the SearchSpace the archs were validated against
    archs: tuple
    what: str  # what kind of file it was, for messages ("search result", "records", ...)


def arch_objects(obj) -> tuple[list, str]:
    """The architecture objects a parsed file holds, and what kind of file it is."""
    if isinstance(obj, dict):
        if obj.get("format") == RECORDS_TAG:
            recs = obj.get("records")
            if not isinstance(recs, list):
                raise ArchError("the records file has no list of records")
            archs = [r.get("arch") if isinstance(r, dict) else None for r in recs]
            return [a for a in archs if not (isinstance(a, dict) and
                                             a.get("space") == MODEL_FILE_SPACE)], "records"
        if obj.get("format") == POOLS_TAG:
            levels = obj.get("members")
            if not isinstance(levels, list):
                raise ArchError("the pools file has no list of members")
            return [m.get("arch") if isinstance(m, dict) else None
                    for level in levels if isinstance(level, list) for m in level], "pools"
        best = obj.get("best")
        if isinstance(best, dict) and "arch" in best:
            return [best["arch"]], "search result"
        if isinstance(obj.get("arch"), dict) and isinstance(obj.get("space"), str):
            return [obj["arch"]], "search result"  # a result naming its (preset) space
        if "arch" in obj and "space" not in obj:
            return [obj["arch"]], "search result"
    return [obj], "architecture"


def _space_name(objs: list, explicit: str | None) -> str:
    if explicit:
        return explicit
    named = {o["space"] for o in objs if isinstance(o, dict) and isinstance(o.get("space"), str)}
    if len(named) > 1:
        raise ArchError(f"the file holds architectures of spaces {sorted(named)}; pick one with "
                        f"--space")
    if named:
        return named.pop()
    # a seed's native form that only one space has (NAS-Bench-201's cell string, FBNet's 22
    # block names) names its space; anything else is ElasticViT's list, as before
    from hwnas.arch import native_space

    natives = {native_space(o) for o in objs}
    return natives.pop() if len(natives) == 1 and None not in natives else DEFAULT_SPACE


def _candidates(first: str, named_by_file: str | None) -> list[str]:
    """Spaces to try, in order: the one the file names as a whole (a search result), the one
    the architectures name, then the registered spaces of the same family (an arch of the
    AutoFormer-B preset says "vit", but only ``vit-autoformer-b`` allows its widths)."""
    from hwnas.spaces import SPACES

    order = [n for n in (named_by_file, first) if n]
    order += [n for n in SPACES if n.startswith(f"{first}-")]
    return list(dict.fromkeys(order))


def read_arch_text(path: str | Path) -> str:
    """An arch file's text: a regular file under the cap, or ``-`` (standard input). A FIFO,
    a device (/dev/zero) or a folder is one ArchError line at once, never a hang."""
    from hwnas.errors import TableError
    from hwnas.latency.safeio import MAX_ARCH_BYTES, read_capped

    try:
        data = read_capped(path, MAX_ARCH_BYTES, "architecture file", stdin=True)
    except TableError as e:
        raise ArchError(f"cannot read architecture file: {e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ArchError(f"cannot read architecture file {path}: not UTF-8 text ({e.reason} "
                        f"at byte {e.start})") from None


def parse_arch_json(text: str, path: str | Path):
    """An arch file's JSON, under safeio's limits (depth, integer length): 100,000 nested ``[``
    or a 5,000-digit integer is one ArchError naming the file. Not JSON at all raises
    json.JSONDecodeError, for the caller to read the text another way."""
    from hwnas.latency.safeio import JSONLimitError, load_json

    where = "standard input" if str(path) == "-" else str(path)
    try:
        return load_json(text, f"architecture file {where}")
    except JSONLimitError as e:
        raise ArchError(str(e)) from None


def load_arch_file(path: str | Path, space: str | None = None) -> ArchFile:
    """Read, parse and validate every architecture in ``path`` (ArchError when it cannot)."""
    from hwnas.spaces import get_space
    from hwnas.spaces.registry import space_named_by_file

    path = Path(path)
    text = read_arch_text(path)
    try:
        obj = parse_arch_json(text, path)
    except json.JSONDecodeError:
        obj = text  # some seeds' formats are Python text (ViT-ResNAS's network_def)
    objs, what = arch_objects(obj)
    if not objs:
        raise ArchError(f"{path} ({what}) holds no architecture")
    many = what in ("records", "pools")
    if space:
        names = [space]
    else:
        whole = obj.get("space") if isinstance(obj, dict) and what == "search result" else None
        names = _candidates(_majority(objs) if many else _space_name(objs, None),
                            whole if isinstance(whole, str) else None)
    first_error = None
    for name in names:
        # a name the file gave is data: registered spaces only (a module:attr is not imported)
        sp = get_space(name) if space else space_named_by_file(name, str(path))
        archs, error = _parse_all(sp, objs, many)
        if archs:
            return ArchFile(sp, tuple(archs), what)
        first_error = first_error or error
    if first_error is not None:
        raise ArchError(f"{path}: {first_error}")
    raise ArchError(f"{path} ({what}) holds no architecture of space {names[0]}")


def _parse_all(sp, objs: list, many: bool) -> tuple[list, ArchError | None]:
    """The archs of ``objs`` valid in ``sp`` (records and pools: those that are; one arch: it,
    or the error saying why not)."""
    archs = []
    for o in objs:
        try:
            archs.append(sp.arch_from_obj(o))
        except ArchError as e:
            if not many:
                return [], e
    return archs, None


def _majority(objs: list) -> str:
    """The space most entries of a records or pools file name (pick another with --space)."""
    from collections import Counter

    names = Counter(o["space"] for o in objs if isinstance(o, dict)
                    and isinstance(o.get("space"), str))
    return names.most_common(1)[0][0] if names else DEFAULT_SPACE
