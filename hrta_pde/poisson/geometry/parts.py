"""The named parts of a domain's boundary: box sides, polygon edges, spheres and CSG operands."""
from __future__ import annotations

from dataclasses import dataclass

from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.geometry.csg import Csg
from hrta_pde.poisson.geometry.shapes import Box, Polygon, Shape

__all__ = ["BoundaryParts", "PART_KINDS", "boundary_parts", "present_parts", "side_names", "side_index"]

_AXIS_NAMES = ("x", "y", "z")
PART_KINDS = ("dirichlet", "neumann", "robin")


def _box_side_names(dim: int) -> list[str]:
    """Side names of a box: ``x_min, x_max, y_min, ...`` up to 3-D, ``x1_min, ...`` above."""
    if dim <= 3:
        return [f"{_AXIS_NAMES[i]}_{end}" for i in range(dim) for end in ("min", "max")]
    return side_names(dim)


@dataclass
class BoundaryParts:
    """The named pieces of a domain's boundary.

    ``names[k]`` is the name of atomic part ``k`` (the index returned by the shapes'
    ``part_distances``): box sides ``x_min, x_max, y_min, ...`` (``x1_min``... in d > 3), polygon
    edges ``edge0, edge1, ...`` (edge i from vertex i to vertex i+1, in the order of the file),
    ``circle`` / ``sphere`` for a disk / ball; inside a CSG domain each operand is named by its
    ``name`` key or its path (``a``, ``b``, ``a.b``, ...), its sides as ``NAME.x_min``,
    ``NAME.edge0``, and the operand's name stands for all of its pieces.
    ``groups`` maps every accepted name (atomic names, aliases such as ``x1_min``, operand
    names) to the atomic parts it covers; ``present[k]`` says whether part k is a piece of the
    domain's boundary (a side swallowed by another operand is not).
    """

    names: tuple
    groups: dict
    aliases: dict
    operands: tuple
    present: tuple = ()

    def resolve(self, name: str, where: str) -> list[int]:
        if name not in self.groups:
            shown = ", ".join(self.listing())
            raise ProblemError(f"{where}: unknown boundary part {name!r:.60}; this domain's parts "
                               f"are: {shown:.400}")
        return self.groups[name]

    def listing(self) -> list[str]:
        """The part names worth showing: atomic parts on the boundary, then operand names."""
        out = [n for k, n in enumerate(self.names) if not self.present or self.present[k]]
        return out + [o for o in self.operands if o not in out]


def boundary_parts(spec: dict, shape: Shape) -> BoundaryParts:
    names: list[str] = []
    groups: dict[str, list[int]] = {}
    aliases: dict[str, str] = {}
    operands: list[str] = []

    def add_leaf(sp, sh, label):
        start = len(names)
        if isinstance(sh, Box):
            sides, canon = _box_side_names(sh.dim), side_names(sh.dim)
            for side, alias in zip(sides, canon):
                full = side if label is None else f"{label}.{side}"
                names.append(full)
                if alias != side:
                    aliases[alias if label is None else f"{label}.{alias}"] = full
        elif isinstance(sh, Polygon):
            for i in range(sh.n_parts):
                names.append(f"edge{i}" if label is None else f"{label}.edge{i}")
        else:
            names.append(("circle" if sh.dim == 2 else "sphere") if label is None else label)
        return list(range(start, len(names)))

    def walk(sp, sh, path, label):
        if isinstance(sh, Csg):
            ids = []
            for key, sub_sp, sub_sh in (("a", sp["a"], sh.a), ("b", sp["b"], sh.b)):
                sub_path = key if path is None else f"{path}.{key}"
                ids += walk(sub_sp, sub_sh, sub_path, sub_sp.get("name", sub_path))
        else:
            ids = add_leaf(sp, sh, label)
        if label is not None and (isinstance(sh, Csg) or len(ids) > 1):
            if label in groups:
                raise ProblemError(f"domain: the name {label!r} is used by two domain parts; "
                                   "give each part its own name")
            groups[label] = ids
            operands.append(label)
        return ids

    walk(spec, shape, None, None)
    for k, n in enumerate(names):
        if n in groups and groups[n] != [k]:
            raise ProblemError(f"domain: the name {n!r} is used by two domain parts; give each "
                               "part its own name")
        groups[n] = [k]
    for alias, full in aliases.items():
        groups.setdefault(alias, groups[full])
    return BoundaryParts(tuple(names), groups, aliases, tuple(operands))


def present_parts(shape: Shape, m: int = 64) -> tuple:
    """Which atomic parts are pieces of the boundary (some of their points are on it)."""
    present = []
    for k in range(shape.n_parts):
        x = shape.part_points(k, m)
        on = shape.classify(x) == 0
        ok = False
        if on.any():
            ok = bool((shape.part_distances(x[on]).argmin(axis=1) == k).any())
        present.append(ok)
    return tuple(present)


def side_names(dim: int) -> list[str]:
    """The canonical box side names ``x1_min, x1_max, x2_min, ...`` (any dimension)."""
    return [f"x{i}_{end}" for i in range(1, dim + 1) for end in ("min", "max")]


def side_index(name: str) -> int:
    """The part index of a canonical side name: ``x{i}_min`` is ``2 (i - 1)``, ``x{i}_max`` one more."""
    i, end = name[1:].split("_")
    return 2 * (int(i) - 1) + (1 if end == "max" else 0)
