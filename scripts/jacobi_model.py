"""A numpy model of the GPU SVD's one-sided Jacobi: the same rotation order (round-robin over
blocks of 4 columns; a sweep's first round rotates every pair inside each block pair, the others
the pairs across), the same threshold (|a·b| > max(4·eps·sqrt(rows), 1e-6)·‖a‖‖b‖) and f32
arithmetic. It counts sweeps (the last one rotates nothing), on the matrix itself and after QR
preconditioning (Jacobi on Rᵀ of A = QR, with and without column pivoting, and on L of R = LQ),
to say what a GPU QR would save. Usage: python3 scripts/jacobi_model.py [n] (needs scipy)."""
import sys
import numpy as np
import scipy.linalg as sl

f32 = np.float32


def steps(nb, bs):
    """The sweep's inner rounds as (columns i, columns j) index arrays."""
    n2 = nb + (nb & 1)
    last = n2 - 1
    out = []
    for r in range(n2 - 1):
        pairs = [(last, r)] + [((r + p) % last, (r + last - p) % last) for p in range(1, n2 // 2)]
        pairs = [(x, y) for x, y in pairs if x < nb and y < nb]
        if r == 0:
            p2 = 2 * bs
            cols = [[x * bs + k for k in range(bs)] + [y * bs + k for k in range(bs)] for x, y in pairs]
            slots = list(range(p2))
            for _ in range(p2 - 1):
                i = [c[slots[k]] for c in cols for k in range(bs)]
                j = [c[slots[p2 - 1 - k]] for c in cols for k in range(bs)]
                out.append((np.array(i), np.array(j)))
                slots = [slots[0]] + slots[2:] + [slots[1]]
        else:
            for q in range(bs):
                i = [x * bs + k for x, y in pairs for k in range(bs)]
                j = [y * bs + (k + q) % bs for x, y in pairs for k in range(bs)]
                out.append((np.array(i), np.array(j)))
    return out


def sweeps(a, bs=4, most=40):
    w = a.astype(f32).copy()
    rows, n = w.shape
    tol = max(4 * np.finfo(f32).eps * np.sqrt(rows), 1e-6)
    order = steps(-(-n // bs), bs)
    for sweep in range(1, most + 1):
        rotated = 0
        for i, j in order:
            x, y = w[:, i], w[:, j]
            aa, bb, ab = (x * x).sum(0), (y * y).sum(0), (x * y).sum(0)
            on = (np.abs(ab) > tol * np.sqrt(aa * bb)) & (np.abs(ab) > 1e-30)
            if not on.any():
                continue
            rotated += on.sum()
            zeta = (bb - aa) / (2 * np.where(on, ab, 1))
            t = np.where(zeta >= 0, 1, -1) / (np.abs(zeta) + np.sqrt(1 + zeta * zeta))
            c = np.where(on, 1 / np.sqrt(1 + t * t), 1).astype(f32)
            s = np.where(on, t / np.sqrt(1 + t * t), 0).astype(f32)
            w[:, i], w[:, j] = c * x - s * y, s * x + c * y
        if rotated == 0:
            return sweep
    return most


def graded(m, n, rng):
    u = np.linalg.qr(rng.standard_normal((m, n)))[0]
    v = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (u * np.logspace(1, -2, n)) @ v.T


n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
rng = np.random.default_rng(1)
for name, a in [("gaussian", rng.standard_normal((n, n))), ("graded", graded(n, n, rng))]:
    r = np.linalg.qr(a)[1]
    rp = sl.qr(a, pivoting=True)[1]
    lq = np.linalg.qr(rp.T)[1].T
    print(f"{name} {n}²: sweeps {sweeps(a)}; on Rᵀ of QR {sweeps(r.T)}, of pivoted QR "
          f"{sweeps(rp.T)}; on L of its LQ {sweeps(lq)}", flush=True)
