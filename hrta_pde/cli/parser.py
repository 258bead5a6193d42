"""The argument parser of ``hrta-pde``: one function per group of flags."""
from __future__ import annotations

import argparse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(text: str) -> int:
    """An integer, also written as ``1e9`` (a float literal with an integral value)."""
    from hrta_pde.fields import integer_text

    value = integer_text(text, float_bound=2**63)
    if value is None:
        try:
            float(text)
            why = " (or too large)"  # a number, but not an integral one of at most 2^63
        except ValueError:
            why = ""
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer{why}")
    return value


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def _cpu_count() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: ``--threads`` above this many times the CPUs this process may use is refused (10000 threads on
#: 2 cores crashed the process in the OpenMP runtime, or hung for minutes).
THREADS_PER_CPU = 4


def _thread_count(text: str) -> int:
    value = _integer(text)
    cpus = _cpu_count()
    if not 1 <= value <= THREADS_PER_CPU * cpus:
        raise argparse.ArgumentTypeError(f"{value} threads: give 1 to {THREADS_PER_CPU * cpus} "
                                         f"({THREADS_PER_CPU} per CPU; this process may use {cpus})")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (initial network and points)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="floating point type")
    p.add_argument("--device", default="auto", help="auto (CUDA if visible), cpu or cuda")
    p.add_argument("--out", default=None, help="run folder (default: runs/<command>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and fewer messages")
    p.add_argument("--threads", type=_thread_count, default=None,
                   help="CPU threads for torch (default: torch's choice; at most 4 per CPU)")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a non-empty --out folder that holds another run or other files")
    _add_debug(p)


def _add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a sub-command's default does not hide 'hrta-pde --debug solve'
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error (for bug reports; or set HRTA_PDE_DEBUG=1)")


def _add_approx(sub) -> None:
    ap = sub.add_parser("approx", help="supervised function approximation: HRTA against a baseline",
                        description="Train the paper's network on a target function with HRTA and with a "
                        "baseline schedule, from the same initial parameters and points.")
    ap.add_argument("--target", default="sin(2*pi*x)",
                    help="target f*(x) in x (1-D) or x1..xd; e.g. 'sin(2*pi*x)' (default)")
    ap.add_argument("--dim", type=_positive_int, default=1, help="input dimension d (1..10)")
    ap.add_argument("--box", type=_float, nargs=2, metavar=("LO", "HI"), default=[0.0, 1.0],
                    help="domain [LO, HI]^d (default 0 1)")
    ap.add_argument("--points", type=_positive_int, default=100,
                    help="training points (a grid needs k^d points; default 100)")
    ap.add_argument("--sampler", choices=["grid", "random"], default="grid", help="training points")
    ap.add_argument("--test-points", type=_positive_int, default=2000, help="independent random test points")
    ap.add_argument("--width", type=_positive_int, default=1000, help="hidden width m (default 1000)")
    ap.add_argument("--depth", type=_positive_int, default=1, help="hidden layers (1 = the two-layer network)")
    ap.add_argument("--phi", default="relu", help="target activation: relu, relu2, relu3, tanh, sin")
    ap.add_argument("--hrta", default="0.5:3000,1:13000",
                    help="HRTA stages S:N[:LR], comma separated; S:<=N ends at a loss plateau "
                    "(default 0.5:3000,1:13000)")
    ap.add_argument("--baseline", default="1:16000", help="baseline stages (default 1:16000)")
    ap.add_argument("--lr", type=_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    ap.add_argument("--reset-optimizer", action="store_true", help="clear Adam's state at each stage switch")
    ap.add_argument("--plateau-window", type=_positive_int, default=500, help="plateau rule window W")
    ap.add_argument("--plateau-threshold", type=_float, default=0.01, help="plateau rule threshold tau")
    ap.add_argument("--record-every", type=_positive_int, default=10, help="history row every k iterations")
    ap.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue an interrupted approx run from its checkpoints (no other settings)")
    _add_common(ap)


def _add_solver_flags(sp) -> None:
    """The flags of the solver settings (keys of ``SolveConfig``), shared by solve and compare."""
    sp.add_argument("--schedule", default=None, help="HRTA stages S:N[:LR], comma separated; S:<=N "
                    "ends at a plateau; @adam, @lbfgs or @engd picks the stage's optimizer, e.g. 1:500,1:100@engd "
                    "(default for every loss: 1:200@engd, the energy natural gradient at s = 1)")
    sp.add_argument("--lr", type=_float, default=None, help="Adam learning rate (default 1e-3)")
    sp.add_argument("--engd-damping", type=_float, default=None,
                    help="engd damping: mu of (G + mu I)^+ grad with --engd-method linesearch (default 0: "
                    "the pseudo-inverse; lm tries a grid of dampings)")
    sp.add_argument("--engd-method", choices=["linesearch", "lm"], default=None,
                    help="engd step: a grid line search on the step size, or Levenberg-Marquardt damping")
    sp.add_argument("--engd-rtol", type=_float, default=None,
                    help="an engd stage ends after a step that lowers the loss by less than this fraction "
                    "of it (default 1e-3; 0 for ritz: only when no step lowers it)")
    sp.add_argument("--reset-optimizer", action="store_true", default=None,
                    help="clear Adam's state at each stage switch")
    sp.add_argument("--net", choices=["fnn", "paper"], default=None,
                    help="fnn: DeepXDE FNN, Glorot init (default); paper: N(0,1) init, NTK scaling")
    sp.add_argument("--init", choices=["auto", "domain", "glorot"], default=None,
                    help="FNN initialisation: domain (first-layer transitions through the domain, "
                    "unit-scale pre-activations on the training points), glorot (DeepXDE's), or auto "
                    "(default: domain for tanh and sin, glorot for relu^k)")
    sp.add_argument("--width", type=_positive_int, default=None, help="hidden width (default 64)")
    sp.add_argument("--depth", type=_positive_int, default=None, help="hidden layers (default 1)")
    sp.add_argument("--phi", default=None, help="target activation phi: tanh (default), relu3, relu2, relu, sin")
    sp.add_argument("--points", type=_positive_int, default=None, help="interior training points (default 1000; gauss: 8 per network parameter, at least 2500)")
    sp.add_argument("--boundary-points", type=_positive_int, default=None,
                    help="boundary training points (default 200)")
    sp.add_argument("--sampler", choices=["auto", "random", "uniform", "sobol", "gauss"], default=None,
                    help="training points: gauss (Gauss quadrature points with weights: boxes in 1-3 D, "
                    "polygons, disks and concentric annuli), sobol (scrambled Sobol points), random, uniform (a grid), or auto "
                    "(the default: gauss for the ritz loss in 1-D and 2-D where the domain has a rule, else sobol)")
    sp.add_argument("--beta", type=_float, default=None,
                    help="boundary weight (default 100 for ritz and pinn)")
    sp.add_argument("--hard-bc", action=argparse.BooleanOptionalAction, default=None,
                    help="impose the Dirichlet data exactly, u = g + phi*N, instead of the boundary "
                    "penalty; g derived from u is taken on the boundary only (default: on where it applies for ritz on "
                    "gauss points, and for pinn where phi and g_ext are twice differentiable: not where an edge's "
                    "line cuts the domain, nor at a re-entrant corner unless the network has the singular inputs, nor where data from u are "
                    "blended at corners or between circles one of whose centres lies in the domain)")
    sp.add_argument("--interface-inputs", action=argparse.BooleanOptionalAction, default=None,
                    help="give the network |psi(x)| for each interface psi = 0 across which the coefficient a "
                    "jumps (a where(...) or sign(...) in a), so that u can kink there (default: on where a "
                    "has such an interface in the domain)")
    sp.add_argument("--singular-inputs", action=argparse.BooleanOptionalAction, default=None,
                    help="give the network inputs for the points where u is singular: Re w and Im w, w = "
                    "(r e^(i theta))^lam, at each polygon corner with lam < 1 (a re-entrant corner, or a Dirichlet "
                    "edge meeting a Neumann or Robin edge at more than 90 degrees), and the modes r^lam mu(theta), "
                    "lam < 2, where straight interfaces of a cross each other or meet the boundary, and r log r where one "
                    "meets a side whose data excite it (2-D boxes and polygons; 'hrta-pde problems "
                    "--show' lists the points; default: on where there are any)")
    sp.add_argument("--log-corner-inputs", action=argparse.BooleanOptionalAction, default=None,
                    help="give the network r^2 (log r sin 2 theta + theta cos 2 theta) at each right-angled corner "
                    "between two Dirichlet edges (2-D boxes and polygons) whose data no smooth u takes, such as f = 1 with u = 0; they need the "
                    "penalty, not --hard-bc (default: on where they apply, and pinn then takes the penalty; "
                    "ritz on gauss points keeps the exact data and goes without them)")
    sp.add_argument("--energy-check", action=argparse.BooleanOptionalAction, default=None,
                    help="ritz: after every step evaluate the energy on a second set of points (a Gauss rule "
                    "with twice the points, or twice as many Sobol points), keep the parameters where it "
                    "was lowest and stop after 10 steps without a new low (default: on for ritz when every "
                    "stage is engd)")
    sp.add_argument("--test-points", type=_positive_int, default=None,
                    help="independent random test points for the errors (default 10000)")
    sp.add_argument("--eval-every", type=_positive_int, default=None, help="errors every k iterations (default 10)")


def _add_solve_and_compare(sub) -> None:
    for name, helptext in (("solve", "solve a Poisson problem (-Laplace u = f) with HRTA"),
                           ("compare", "compare losses on a Poisson problem over seeds")):
        sp = sub.add_parser(name, help=helptext, description=helptext + ". PROBLEM is a TOML file or "
                            "the name of a built-in problem (hrta-pde problems lists them).")
        sp.add_argument("problem", nargs="?", default=None,
                        help="problem file or built-in name" + (" (default poisson_2d_sin)" if name == "solve" else ""))
        if name == "solve":
            sp.add_argument("--loss", default=None, help="ritz, sobolev, pinn or l2 (default: the problem "
                            "file's [solver] loss, else pinn)")
            sp.add_argument("--export", action="append", default=[], metavar="FILE",
                            help="also write the solution as a mesh file (.vtu, .xdmf, ...), or .csv (d > 3); "
                            "a bare file name goes into the run folder; repeatable")
            sp.add_argument("--resolution", type=_float, default=None,
                            help="mesh size h for --export (default: domain diameter / 40)")
            sp.add_argument("--resume", default=None, metavar="RUN_DIR",
                            help="continue an interrupted run from its checkpoint")
        else:
            sp.add_argument("--losses", default=None, help="comma separated (default ritz,sobolev,pinn)")
            sp.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (default 3)")
            sp.add_argument("--resume", default=None, metavar="RUN_DIR",
                            help="continue an interrupted comparison where it stopped (no other settings)")
        _add_solver_flags(sp)
        sp.add_argument("--reference", choices=["auto", "exact", "fem"], default="auto",
                        help="what errors are measured against: the exact solution, or a P2 finite element "
                        "solution refined until it is well below the errors (1-3 D, not pure Neumann); auto: exact "
                        "when the problem has one, else fem when possible")
        _add_common(sp)
        sp.set_defaults(dtype=None, seed=None, device=None)  # None: the problem file or the default


def _add_small_commands(sub) -> None:
    ep = sub.add_parser("export", help="write a saved run's solution as a mesh file (or CSV for d > 3)",
                        description="Rebuild the trained network of RUN_DIR and write its solution, exact "
                        "solution, error, gradient and f at the nodes of a mesh of the domain.")
    ep.add_argument("run_dir", help="a run folder written by 'hrta-pde solve'")
    ep.add_argument("--to", action="append", default=[], metavar="FILE",
                    help="output file(s): .vtu (default RUN_DIR/solution.vtu), .xdmf, .vtk, .csv, ...")
    ep.add_argument("--resolution", type=_float, default=None, help="mesh size h (default: diameter / 40 in 2-D)")
    _add_debug(ep)

    npar = sub.add_parser("ntk", help="smallest eigenvalue of the NTK Gram matrix H_s against s (Theorem 3.1)",
                          description="Closed-form infinite-width Gram matrix H_s = K^a_s + K^w_s of the two-layer "
                          "network with phi = ReLU, and optionally finite-width empirical ones, on the paper's "
                          "grids: prints the smallest eigenvalue against s, writes a CSV and a plot.")
    npar.add_argument("--dim", type=int, choices=[1, 3], default=1,
                      help="the paper's point set: 1 (100 grid points in [0,1]) or 3 (5^3 grid points)")
    npar.add_argument("--s", default="0.25,0.5,0.75,1,1.25,1.5,1.75,2", help="comma-separated s values in [0, 2]")
    npar.add_argument("--widths", default="", help="also empirical Gram matrices at these widths, e.g. 200,1000")
    npar.add_argument("--seed", type=int, default=0, help="seed of the finite-width networks")
    npar.add_argument("--out", default=None, help="run folder (default runs/ntk-<timestamp>)")
    npar.add_argument("--overwrite", action="store_true",
                      help="reuse a non-empty --out folder that holds another run or other files")
    _add_debug(npar)

    pp = sub.add_parser("problems", help="list the built-in problems")
    pp.add_argument("--show", default=None, metavar="NAME",
                    help="print one problem file (a built-in name or a path) and its boundary parts")
    _add_debug(pp)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hrta-pde", description="Homotopy Relaxation Training (HRTA) for PINNs and "
                     "function approximation, on DeepXDE's PyTorch backend.")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of an error (for bug reports; or set HRTA_PDE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_approx(sub)
    _add_solve_and_compare(sub)
    _add_small_commands(sub)
    return parser
