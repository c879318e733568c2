"""Equations of motion from a Lagrangian: a double pendulum, driven by bpgen's generated Hessian.

The Lagrangian L(q, w) = T - V of two point masses on rigid rods, angles q = (th1, th2) from the vertical and
angular velocities w = (w1, w2), is declared below in SymPy. The Euler-Lagrange equations
d/dt dL/dw = dL/dq give, with the Hessian H of L in (q, w),

    H_ww * dw/dt = dL/dq - H_wq * w,

so one call of `lagrangian.hessian` at a state gives the accelerations: H_ww is the mass matrix. The script
integrates them with scipy.integrate.solve_ivp for ten seconds, prints how well the energy
E = w . dL/dw - L is conserved, and checks the accelerations against sympy.physics.mechanics.LagrangesMethod.

    bpgen generate examples/double_pendulum.py && python examples/double_pendulum.py
"""

import sympy

import bpgen

MASSES = (1.0, 0.5)  # kg
LENGTHS = (1.0, 0.7)  # m
GRAVITY = 9.81  # m/s**2


@bpgen.function
def lagrangian(th1, th2, w1, w2):
    m1, m2 = MASSES
    l1, l2 = LENGTHS
    kinetic = (0.5 * (m1 + m2) * l1**2 * w1**2 + 0.5 * m2 * l2**2 * w2**2
               + m2 * l1 * l2 * w1 * w2 * sympy.cos(th1 - th2))
    potential = -(m1 + m2) * GRAVITY * l1 * sympy.cos(th1) - m2 * GRAVITY * l2 * sympy.cos(th2)
    L = kinetic - potential
    return L


def accelerations(state):
    """(dw1/dt, dw2/dt) at (th1, th2, w1, w2), from the Hessian of the Lagrangian."""
    import numpy as np

    value, grads, H = lagrangian.hessian(*state)
    w = np.asarray(state[2:], dtype=float)
    return np.linalg.solve(H[2:, 2:], np.asarray(grads[:2]) - H[2:, :2] @ w)


def energy(state) -> float:
    """E = w . dL/dw - L."""
    value, grads = lagrangian.value_and_grad(*state)
    return state[2] * grads[2] + state[3] * grads[3] - value


def simulate(seconds: float = 10.0, start=(2.0, -1.0, 0.0, 1.5)):
    """Integrate the motion; returns (the solution, the largest relative drift of the energy)."""
    import numpy as np
    from scipy.integrate import solve_ivp

    solution = solve_ivp(lambda t, s: [s[2], s[3], *accelerations(s)], (0.0, seconds), start, method="DOP853",
                         rtol=1e-11, atol=1e-11, dense_output=True)
    energies = [energy(s) for s in solution.y.T]
    return solution, float(np.max(np.abs(np.array(energies) - energies[0])) / abs(energies[0]))


def reference_accelerations():
    """The same accelerations from sympy.physics.mechanics: a function of the state."""
    from sympy.physics.mechanics import LagrangesMethod, Lagrangian, Particle, Point, ReferenceFrame, dynamicsymbols

    q1, q2 = dynamicsymbols("q1 q2")
    u1, u2 = dynamicsymbols("q1 q2", 1)
    N = ReferenceFrame("N")
    O = Point("O")
    O.set_vel(N, 0)
    P1 = O.locatenew("P1", LENGTHS[0] * (sympy.sin(q1) * N.x - sympy.cos(q1) * N.y))
    P2 = P1.locatenew("P2", LENGTHS[1] * (sympy.sin(q2) * N.x - sympy.cos(q2) * N.y))
    P1.set_vel(N, P1.pos_from(O).dt(N))
    P2.set_vel(N, P2.pos_from(O).dt(N))
    particles = [Particle("p1", P1, MASSES[0]), Particle("p2", P2, MASSES[1])]
    particles[0].potential_energy = MASSES[0] * GRAVITY * P1.pos_from(O).dot(N.y)
    particles[1].potential_energy = MASSES[1] * GRAVITY * P2.pos_from(O).dot(N.y)
    method = LagrangesMethod(Lagrangian(N, *particles), [q1, q2])
    method.form_lagranges_equations()
    rhs = method.rhs()[2:]
    return sympy.lambdify([q1, q2, u1, u2], list(rhs), "math")


if __name__ == "__main__":
    import numpy as np

    solution, drift = simulate()
    print(f"double pendulum, 10 s: {solution.t.size} steps, largest relative energy drift {drift:.1e}")
    reference = reference_accelerations()
    rng = np.random.default_rng(0)
    worst = 0.0
    for state in rng.uniform(-3.0, 3.0, size=(20, 4)):
        got = accelerations(state)
        want = np.array(reference(*state))
        worst = max(worst, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
    print(f"accelerations against sympy.physics.mechanics at 20 random states: largest relative error {worst:.1e}")
