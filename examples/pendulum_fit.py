"""Fit a damped pendulum's parameters to noisy observations, through a bpgen.scan of RK4 steps, by Newton's method.

The pendulum's angle follows th'' = -k sin(th) - c th': k = g / L the squared natural frequency, c the damping.
The misfit below integrates it with 300 classical Runge-Kutta steps of DT seconds, written as one
`bpgen.scan` over the observations, from the unknown initial angle th0 at rest, and adds up the squared
differences to the observed angles: the negative log-likelihood under Gaussian noise of NOISE. Its generated
module holds the value, the gradient and the Hessian times a vector (`derivatives="hvp"`), each a loop over
the steps (the hvp is the reversed loop of the tangent loop, `rk4_jvp_scan_backward`).

The script simulates observations from known parameters, then fits them from a wrong start three ways with
scipy.optimize.minimize: trust-krylov and Newton-CG on the generated hvp, L-BFGS-B on the gradient alone, and
prints the iterations and evaluations each needed, the parameters recovered and their standard errors (from
the Hessian at the optimum).

    python examples/pendulum_fit.py
"""

import bpgen

DT = 0.05  # s, the step of the integration and of the observations
STEPS = 300  # 15 seconds
NOISE = 0.05  # rad, the observations' standard deviation
TRUE = {"k": 4.0, "c": 0.25, "th0": 1.2}  # 1/s**2, 1/s, rad
START = (2.5, 0.6, 0.9)  # where the fits start


@bpgen.function(shapes={"k": (), "c": (), "th0": (), "obs": ("T",)}, wrt=["k", "c", "th0"], derivatives="hvp")
def pendulum_misfit(k, c, th0, obs):
    def rk4(state, y):
        th, om = state
        a_th, a_om = om, -k * bpgen.sin(th) - c * om
        b_th, b_om = om + 0.5 * DT * a_om, -k * bpgen.sin(th + 0.5 * DT * a_th) - c * (om + 0.5 * DT * a_om)
        c_th, c_om = om + 0.5 * DT * b_om, -k * bpgen.sin(th + 0.5 * DT * b_th) - c * (om + 0.5 * DT * b_om)
        d_th, d_om = om + DT * c_om, -k * bpgen.sin(th + DT * c_th) - c * (om + DT * c_om)
        th_new = th + DT / 6 * (a_th + 2 * b_th + 2 * c_th + d_th)
        om_new = om + DT / 6 * (a_om + 2 * b_om + 2 * c_om + d_om)
        r = th_new - y
        return (th_new, om_new), r * r

    _, squares = bpgen.scan(rk4, (th0, 0.0), obs)
    return 0.5 / NOISE**2 * bpgen.sum(squares)


def simulate(k: float, c: float, th0: float, seed: int = 0):
    """Observed angles after each step: the same RK4 scheme in NumPy, plus Gaussian noise."""
    import numpy as np

    def rate(th, om):
        return om, -k * np.sin(th) - c * om

    th, om, angles = th0, 0.0, []
    for _ in range(STEPS):
        a = rate(th, om)
        b = rate(th + 0.5 * DT * a[0], om + 0.5 * DT * a[1])
        c2 = rate(th + 0.5 * DT * b[0], om + 0.5 * DT * b[1])
        d = rate(th + DT * c2[0], om + DT * c2[1])
        th, om = th + DT / 6 * (a[0] + 2 * b[0] + 2 * c2[0] + d[0]), om + DT / 6 * (a[1] + 2 * b[1] + 2 * c2[1] + d[1])
        angles.append(th)
    return np.array(angles) + np.random.default_rng(seed).normal(0.0, NOISE, STEPS)


def fit(obs, method: str):
    """scipy.optimize.minimize from START; Newton's methods get the generated Hessian-vector product. Returns the
    result and the number of calls of the generated value_and_grad and hvp."""
    from scipy.optimize import minimize

    objective = pendulum_misfit.flat(obs=obs)
    counts = {"value_and_grad": 0, "hvp": 0}

    def value_and_grad(v):
        counts["value_and_grad"] += 1
        return objective.value_and_grad(v)

    def hvp(v, p):
        counts["hvp"] += 1
        return objective.hvp(v, p)

    options = {"trust-krylov": {"gtol": 1e-6}, "Newton-CG": {"xtol": 1e-10}, "L-BFGS-B": {"gtol": 1e-6, "ftol": 0}}
    result = minimize(value_and_grad, objective.pack(*START), jac=True,
                      hessp=None if method == "L-BFGS-B" else hvp, method=method, options=options[method])
    return result, counts


def main() -> dict:
    import time

    import numpy as np

    obs = simulate(**TRUE)
    rows = {}
    print(f"fitting k, c, th0 of a damped pendulum to {STEPS} noisy angles (true {TRUE}), from {START}")
    start = time.perf_counter()
    objective = pendulum_misfit.flat(obs=obs)
    objective.value_and_grad(objective.pack(*START)), objective.hvp(objective.pack(*START), np.ones(3))
    print(f"the generated value_and_grad and hvp, ready in {time.perf_counter() - start:.2f} s\n")
    print(f"{'method':<14}{'iterations':>11}{'value_and_grad':>16}{'hvp':>6}{'time':>11}   k, c, th0")
    for method in ("trust-krylov", "Newton-CG", "L-BFGS-B"):
        fit(obs, method)  # SciPy's solvers load their own parts on first use: timed from the second fit
        start = time.perf_counter()
        result, counts = fit(obs, method)
        seconds = time.perf_counter() - start
        rows[method] = {"result": result, **counts}
        print(f"{method:<14}{result.nit:>11}{counts['value_and_grad']:>16}{counts['hvp']:>6}{seconds * 1e3:>8.1f} ms   "
              + ", ".join(f"{v:.4f}" for v in result.x))
    best = rows["trust-krylov"]["result"].x
    # the Laplace approximation: standard errors from the inverse Hessian at the optimum
    H = pendulum_misfit.flat(obs=obs).hessian(best)
    errors = np.sqrt(np.diag(np.linalg.inv(H)))
    print("\nrecovered (trust-krylov) with standard errors: "
          + ", ".join(f"{name} = {v:.4f} +- {e:.4f} (true {TRUE[name]})" for name, v, e in zip(TRUE, best, errors)))
    rows["errors"] = errors
    return rows


if __name__ == "__main__":
    main()
