"""numpy's side of the CPU rows of the report's table, on the machine that runs it: the same
operations and sizes as `tmath-bench`'s table (f32, inputs made before timing, median of the
calls after a warm-up). Usage: python3 scripts/numpy_anchor.py [reps]"""
import sys, time
import numpy as np

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
rng = np.random.default_rng(0)
f32 = np.float32


def med(fn):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return sorted(ts)[len(ts) // 2]


def gelu(x):
    return f32(0.5) * x * (f32(1) + np.tanh(f32(0.7978845608) * (x + f32(0.044715) * x * x * x)))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def chain(x, c=f32(0.5)):
    t = np.sqrt(np.abs(np.tanh(x * c + c)))
    return f32(1) / (f32(1) + np.exp(np.exp(-t) * f32(-1)))


a = rng.standard_normal((1024, 1024), dtype=f32)
b = rng.standard_normal((1024, 1024), dtype=f32)
bias = rng.standard_normal((1024,), dtype=f32)
s = rng.standard_normal((512, 512), dtype=f32)
rows = [
    ("matmul 1024x1024", lambda: a @ b),
    ("svd 512x512", lambda: np.linalg.svd(s, full_matrices=False)),
    ("gelu 1024x1024", lambda: gelu(a)),
    ("softmax (last axis) 1024x1024", lambda: softmax(a)),
    ("8-op elementwise chain 1024x1024", lambda: chain(a)),
    ("matmul + bias + gelu 1024x1024", lambda: gelu(a @ b + bias)),
]
print(f"numpy {np.__version__}")
for name, fn in rows:
    print(f"{name}: {med(fn):.3f} ms")
