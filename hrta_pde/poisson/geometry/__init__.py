"""The exact geometry of a domain: primitive shapes, their CSG combinations, the boundary parts.

``shapes`` (:class:`Box`, :class:`Ball`, :class:`Polygon`), ``csg`` (:class:`Csg`: union,
intersection, difference) and ``parts`` (the names of the boundary pieces). Sampling, the exact
boundary data, meshing, the FEM reference and plots all use these shapes; :func:`to_deepxde`
gives the matching DeepXDE geometry to those who want one.
"""
from hrta_pde.poisson.geometry.csg import Csg
from hrta_pde.poisson.geometry.parts import BoundaryParts, boundary_parts, present_parts
from hrta_pde.poisson.geometry.shapes import Ball, Box, Polygon, Shape, to_deepxde

__all__ = ["Ball", "BoundaryParts", "Box", "Csg", "Polygon", "Shape", "boundary_parts",
           "present_parts", "to_deepxde"]
