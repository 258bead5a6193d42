"""The Poisson application: problems, the losses, the reference solutions, meshing and the solver.

The domain: ``geometry/`` (the exact shapes, their CSG combinations and the boundary parts) and
``sampling`` (the point sources). The problem: ``problem`` (``PoissonProblem``, the boundary
conditions), the problem file's schema ``spec`` (with ``domain_spec``, ``boundary_spec``),
``catalog`` (reading problem files, the built-in problems) and ``problem_toml`` (writing them),
``errors`` (``ProblemError``), ``expressions`` (the safe expression language and sympy
derivations). The method's pieces: ``distance`` (exact Dirichlet data), ``losses`` and
``metrics``. References and outputs: ``fem`` / ``fem_mesh`` / ``fem_solution`` (the scikit-fem
reference), ``mesh`` (meshing the shapes), ``export`` and ``plotting``. Running: ``settings`` (``SolveConfig``, the ``[solver]`` keys),
``solve`` (one planned run, quiet), ``runfolder`` (what a run leaves on disk) and ``compare``
(losses over seeds).
"""
