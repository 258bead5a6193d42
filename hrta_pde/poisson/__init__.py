"""The Poisson application: problems, the losses, the reference solutions, meshing and the solver.

``problem`` (geometry, the problem file and its catalog, ``PoissonProblem``), ``expressions`` (the
safe expression language and sympy derivations), ``distance`` (exact Dirichlet data), ``losses``
and ``metrics``, ``fem`` (the scikit-fem reference), ``mesh`` / ``export`` / ``plotting`` (outputs),
``settings`` (``SolveConfig``, the ``[solver]`` keys), ``solve`` (one planned run, quiet),
``runfolder`` (what a run leaves on disk) and ``compare`` (losses over seeds).
"""
