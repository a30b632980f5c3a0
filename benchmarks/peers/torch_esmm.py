#!/usr/bin/env python3
"""PyTorch peer of the ESMM reference workload (see benchmarks/peers/README.md).

Model: 10 embedding tables (8 single-valued fields + 2 bags of 10 ids, 100,000 ids x 18,
sum pooling) shared by two towers 180 -> 200 -> PReLU -> 80 -> PReLU -> 1.
Loss: mean BCE(pCTR, click) + mean BCE(pCTR * pCVR, click * conversion), the second term
in log space (log p = logsig(a) + logsig(b), log(1 - p) = logaddexp(logsig(-a), logsig(a) + logsig(-b))).

Variants:
  sparse  nn.EmbeddingBag(mode='sum', sparse=True) + torch.optim.SparseAdam for the tables,
          torch.optim.Adam for the towers (lr 1e-3 both)
  dense   nn.EmbeddingBag(mode='sum', sparse=False) + one torch.optim.Adam (lr 1e-3)

Each (variant, threads, batch) runs in its own child process, so the peak RSS
(getrusage ru_maxrss) is per configuration. Initial weights and data are read from the
files written by benchmarks/peers/make-init.mjs (generated on demand via `node`).

Usage:
  /usr/bin/python3 benchmarks/peers/torch_esmm.py [--variants sparse,dense] [--threads 1,2]
      [--batches 1024,256] [--warmup 5] [--repeats 5] [--steps 20] [--loss-steps 20]
      [--omp-wait default,passive] [--blas system,reference] [--reference-threads 1]
      [--out benchmarks/out/peer-torch.json] [--keep-env] [--quick]

BLAS: 'system' runs with the libblas.so.3 the system resolves (OpenBLAS once
libopenblas0-pthread is installed). 'reference' repeats the --reference-threads runs with
Debian's reference (netlib) libblas.so.3 from libblas3, selected via LD_LIBRARY_PATH; that is
the BLAS Debian's torch gets when no OpenBLAS is installed. The library that actually provides
sgemm_ to libtorch is recorded per run (dlsym in libtorch_cpu's scope + dladdr).

Runs with more than one thread are made once per OpenMP wait policy in --omp-wait: libgomp's
default spins before sleeping, which collapses throughput when the cores are shared with
other busy processes; OMP_WAIT_POLICY=PASSIVE sleeps at once.

The children get OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (OpenBLAS auto-detects the
CPU and its caches), OPENBLAS_NUM_THREADS / OMP_NUM_THREADS = threads, and glibc's
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ raised so freed buffers are reused
instead of being unmapped and faulted in again each step; --keep-env passes the
environment through unchanged (for comparison).

Exits 0 with a clear message (and a JSON with "skipped": true) when torch is missing.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "out"))
MANIFEST = os.path.join(OUT_DIR, "init-manifest.json")

# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit) and would
# silently ignore a larger value, so this is the largest one that takes effect; every
# per-step buffer of this workload (at most a 7.2 MB dense table gradient) is below it.
MALLOC_MMAP_THRESHOLD = str(32 * 1024 * 1024)
MALLOC_TRIM_THRESHOLD = str(1_000_000_000)


def child_env(threads, keep_env, omp_wait=None, blas_dir=None):
    env = dict(os.environ)
    if blas_dir:
        env["LD_LIBRARY_PATH"] = blas_dir + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if omp_wait:
        env["OMP_WAIT_POLICY"] = omp_wait
    if not keep_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        env["MALLOC_MMAP_THRESHOLD_"] = MALLOC_MMAP_THRESHOLD
        env["MALLOC_TRIM_THRESHOLD_"] = MALLOC_TRIM_THRESHOLD
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def ensure_init():
    if not os.path.exists(MANIFEST):
        maker = os.path.join(HERE, "make-init.mjs")
        print("torch peer: generating shared init files with node " + maker, file=sys.stderr)
        subprocess.run(["node", maker], check=True)
    with open(MANIFEST) as f:
        return json.load(f)


# ---------------------------------------------------------------------------- child


def loaded_libraries():
    """Shared libraries of interest mapped into this process (BLAS, LAPACK, OpenMP, oneDNN)."""
    keys = ("blas", "lapack", "mkl", "dnnl", "gomp", "iomp", "libtorch_cpu")
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith("/"):
                    p = parts[5]
                    if any(k in os.path.basename(p).lower() for k in keys) and p not in libs:
                        libs.append(p)
    except OSError:
        pass
    return [{"path": p, "real": os.path.realpath(p)} for p in libs]


def sgemm_provider(libs):
    """Path of the library that provides sgemm_ to libtorch (dlsym in libtorch_cpu's scope, then dladdr)."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    torch_cpu = next((l["path"] for l in libs if os.path.basename(l["path"]).startswith("libtorch_cpu")), None)
    try:
        scope = ctypes.CDLL(torch_cpu) if torch_cpu else ctypes.CDLL(None)
        addr = ctypes.cast(scope.sgemm_, ctypes.c_void_p).value
        info = DlInfo()
        libc = ctypes.CDLL(None)
        libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        if addr and libc.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)):
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return None


def openblas_info(provider):
    """Core name and build config reported by OpenBLAS, when OpenBLAS provides sgemm_."""
    import ctypes

    if not provider:
        return None
    try:
        h = ctypes.CDLL(provider)
        h.openblas_get_corename.restype = ctypes.c_char_p
        h.openblas_get_config.restype = ctypes.c_char_p
        info = {
            "library": provider,
            "corename": h.openblas_get_corename().decode(),
            "config": h.openblas_get_config().decode().strip(),
        }
        try:
            info["threads"] = h.openblas_get_num_threads()
        except AttributeError:
            pass
        return info
    except (OSError, AttributeError):
        return None


REMAP = 7919  # id remap multiplier for --vocab (prime, coprime to 10^k); esmm-ts and tfjs.mjs use the same


def run_child(variant, threads, batch, warmup, repeats, steps, loss_steps, vocab=None, workload="mlp", profile_steps=0):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    manifest = ensure_init()

    def load(entry, dtype):
        with open(os.path.join(OUT_DIR, entry["file"]), "rb") as f:
            buf = bytearray(f.read())
        return torch.frombuffer(buf, dtype=dtype).reshape(entry["shape"]).clone()

    tensors = {t["name"]: t for t in manifest["tensors"]}
    single = manifest["singleFields"]
    bags = manifest["bagFields"]
    bag_len = manifest["bagLen"]
    sparse = variant == "sparse"
    # --vocab (scaling runs): tables of `vocab` rows drawn N(0, 0.01^2) here, ids remapped (id * REMAP) % vocab.
    scaled = vocab is not None and vocab != manifest["vocab"]
    if scaled and workload != "mlp":
        raise SystemExit("--vocab scaling runs are defined for the mlp workload only")
    torch.manual_seed(2018)
    names = [f"f{i}" for i in range(single)] + [f"b{i}" for i in range(bags)]

    def table(entry_name, rows=None, bag=True):
        w = torch.empty(rows, manifest["dim"]).normal_(0.0, 0.01) if scaled else load(tensors[entry_name], torch.float32)
        if bag:
            return nn.EmbeddingBag.from_pretrained(w, freeze=False, mode="sum", sparse=sparse)
        return nn.Embedding.from_pretrained(w, freeze=False, sparse=sparse)

    class MLP(nn.Module):
        """Linear / PReLU alternating (l1, p1, l2, ...), weights from the init files under `prefix`."""

        def __init__(self, prefix, dims):
            super().__init__()
            self.depth = len(dims) - 1
            for l in range(self.depth):
                setattr(self, f"l{l + 1}", nn.Linear(dims[l], dims[l + 1]))
                if l < self.depth - 1:
                    setattr(self, f"p{l + 1}", nn.PReLU(dims[l + 1]))
            with torch.no_grad():
                for name, p in self.named_parameters():
                    p.copy_(load(tensors[f"{prefix}.{name}"], torch.float32))

        def forward(self, x):
            for l in range(self.depth):
                x = getattr(self, f"l{l + 1}")(x)
                if l < self.depth - 1:
                    x = getattr(self, f"p{l + 1}")(x)
            return x

    class MlpTower(nn.Module):
        def __init__(self, prefix):
            super().__init__()
            self.net = MLP(prefix, manifest["towerDims"])

        def forward(self, pooled, field_ids, seq):
            return self.net(torch.cat(pooled, dim=1)).squeeze(1)

    pair = manifest.get("dinPair", {"sequence": "b0", "target": "f0"})
    seq_index, target_index = names.index(pair["sequence"]), names.index(pair["target"])

    class DinTower(nn.Module):
        """DIN (Zhou et al., KDD 2018): the sequence's behaviours e weighted by the activation unit's score of
        [e, q, e - q, e * q] against the target q, unnormalised (the paper); bags here are full, so no mask."""

        def __init__(self, prefix):
            super().__init__()
            self.att = MLP(f"{prefix}.att", manifest["attentionDims"])
            self.net = MLP(prefix, manifest["towerDims"])

        def forward(self, pooled, field_ids, seq):
            b, l, d = seq.shape
            q = pooled[target_index].unsqueeze(1).expand(b, l, d)
            scores = self.att(torch.cat([seq, q, seq - q, seq * q], dim=2).reshape(b * l, 4 * d)).reshape(b, 1, l)
            attended = torch.bmm(scores, seq).squeeze(1)
            x = torch.cat(pooled[:seq_index] + [attended] + pooled[seq_index + 1 :], dim=1)
            return self.net(x).squeeze(1)

    class DeepFmTower(nn.Module):
        """DeepFM (Guo et al., IJCAI 2017): bias + first-order tables + FM 0.5((sum v)^2 - sum v^2) + MLP."""

        def __init__(self, prefix):
            super().__init__()
            self.lin = nn.ModuleList(
                [
                    nn.EmbeddingBag.from_pretrained(load(tensors[f"{prefix}.lin.{n}"], torch.float32), freeze=False, mode="sum", sparse=sparse)
                    for n in names
                ]
            )
            self.bias = nn.Parameter(load(tensors[f"{prefix}.fm.bias"], torch.float32))
            self.net = MLP(prefix, manifest["towerDims"])

        def forward(self, pooled, field_ids, seq):
            first = self.bias
            for t, ids in zip(self.lin, field_ids):
                first = first + t(ids)
            stack = torch.stack(pooled, dim=1)
            sum_v = stack.sum(1)
            second = 0.5 * (sum_v * sum_v - (stack * stack).sum(1)).sum(1, keepdim=True)
            return (first + second + self.net(torch.cat(pooled, dim=1))).squeeze(1)

    Tower = {"mlp": MlpTower, "din": DinTower, "deepfm": DeepFmTower}[workload]

    class ESMM(nn.Module):
        def __init__(self):
            super().__init__()
            # DIN reads its sequence field row by row (nn.Embedding) instead of sum-pooled.
            self.tables = nn.ModuleList(
                [table(f"emb.{n}", vocab, bag=not (workload == "din" and i == seq_index)) for i, n in enumerate(names)]
            )
            self.ctr = Tower("ctr")
            self.cvr = Tower("cvr")

        def forward(self, field_ids):
            pooled = [t(ids) for t, ids in zip(self.tables, field_ids)]
            seq = pooled[seq_index] if workload == "din" else None
            return self.ctr(pooled, field_ids, seq), self.cvr(pooled, field_ids, seq)

    def esmm_loss(a, b, click, conv):
        ctr = F.binary_cross_entropy_with_logits(a, click)
        log_p = F.logsigmoid(a) + F.logsigmoid(b)
        log_1mp = torch.logaddexp(F.logsigmoid(-a), F.logsigmoid(a) + F.logsigmoid(-b))
        ctcvr = -(conv * log_p + (1 - conv) * log_1mp).mean()
        return ctr + ctcvr

    model = ESMM()
    # Row-sparse parameters (every table, DeepFM's first-order ones too) go to SparseAdam, the rest to Adam.
    embedding_modules = [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    emb_params = [p for m in embedding_modules for p in m.parameters()]
    emb_ids = {id(p) for p in emb_params}
    tower_params = [p for p in model.parameters() if id(p) not in emb_ids]
    if sparse:
        optimizers = [torch.optim.SparseAdam(emb_params, lr=1e-3), torch.optim.Adam(tower_params, lr=1e-3)]
    else:
        optimizers = [torch.optim.Adam(emb_params + tower_params, lr=1e-3)]

    # Data: per-field contiguous id columns, so a batch is a contiguous row slice.
    ids = load(manifest["data"]["ids"], torch.int32).long()
    if scaled:
        ids = (ids * REMAP) % vocab
    labels = load(manifest["data"]["labels"], torch.float32)
    rows = manifest["data"]["rows"]
    cols = [ids[:, i : i + 1].contiguous() for i in range(single)]
    cols += [ids[:, single + i * bag_len : single + (i + 1) * bag_len].contiguous() for i in range(bags)]
    click_all = labels[:, 0].contiguous()
    conv_all = labels[:, 1].contiguous()
    del ids, labels

    def batch_at(k):
        r0 = (k * batch) % rows
        return [c[r0 : r0 + batch] for c in cols], click_all[r0 : r0 + batch], conv_all[r0 : r0 + batch]

    losses = []
    step_no = [0]

    phases = None  # per-phase seconds, summed while profiling

    def step():
        field_ids, click, conv = batch_at(step_no[0])
        step_no[0] += 1
        t0 = time.perf_counter()
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        a, b = model(field_ids)
        loss = esmm_loss(a, b, click, conv)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        for o in optimizers:
            o.step()
        t3 = time.perf_counter()
        value = loss.item()
        if phases is not None:
            phases["forward"] += t1 - t0
            phases["backward"] += t2 - t1
            phases["optimizer"] += t3 - t2
            phases["other"] += time.perf_counter() - t3
        if len(losses) < loss_steps:
            losses.append(value)
        return value

    for _ in range(warmup):
        step()
    rates = []
    # CPU time (user + system, every thread) as well as wall time: on a shared machine it is the steadier figure.
    cpu0 = time.process_time()
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - t0))
    cpu_ms_per_step = (time.process_time() - cpu0) * 1000 / max(1, repeats * steps)
    while len(losses) < loss_steps:
        step()

    profile = None
    if profile_steps > 0:
        # Self time of each op over a few steps, the PyTorch side of the per-kernel breakdown.
        from torch.profiler import ProfilerActivity, profile as torch_profile

        phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0, "other": 0.0}
        for _ in range(profile_steps):
            step()
        phase_ms = {k: v * 1000 / profile_steps for k, v in phases.items()}
        phases = None
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(profile_steps):
                step()
            step_ms = (time.perf_counter() - t0) * 1000 / profile_steps
        rows = [
            {"op": e.key, "msPerStep": e.self_cpu_time_total / 1000 / profile_steps, "callsPerStep": e.count / profile_steps}
            for e in prof.key_averages()
            if e.self_cpu_time_total > 0
        ]
        rows.sort(key=lambda r: -r["msPerStep"])
        profile = {"stepMs": step_ms, "rows": rows, "phases": phase_ms,
                   "note": "phases timed without the profiler; ops: torch.profiler self CPU time (it adds overhead)"}

    libs = loaded_libraries()
    provider = sgemm_provider(libs)
    return {
        "framework": "pytorch",
        "workload": workload,
        "profile": profile,
        "variant": variant,
        "threads": threads,
        "batch": batch,
        "vocabPerField": vocab if scaled else manifest["vocab"],
        "samplesPerSec": statistics.median(rates),
        "samplesPerSecRepeats": rates,
        "cpuMsPerStep": cpu_ms_per_step,
        "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": losses,
        "warmupSteps": warmup,
        "repeats": repeats,
        "stepsPerRepeat": steps,
        "torchThreads": torch.get_num_threads(),
        "libraries": libs,
        "sgemmProvider": provider,
        "openblas": openblas_info(provider),
        "notes": (
            "EmbeddingBag(sum, sparse=True) + SparseAdam for tables, Adam for towers"
            if sparse
            else "EmbeddingBag(sum, sparse=False) + one Adam over all parameters"
        ),
    }


# ---------------------------------------------------------------------------- parent


def torch_meta():
    import torch

    return {
        "torchVersion": torch.__version__,
        "python": platform.python_version(),
        "pythonExecutable": sys.executable,
        "config": torch.__config__.show(),
        "parallelInfo": torch.__config__.parallel_info(),
    }


def blas_summary(result):
    ob = result.get("openblas")
    if ob:
        version = next((w for w in ob["config"].split()[1:2]), "")
        return f"OpenBLAS {version} core={ob['corename']} ({ob['library']})"
    if result.get("sgemmProvider"):
        return result["sgemmProvider"]
    blas = [l["real"] for l in result.get("libraries", []) if "blas" in os.path.basename(l["real"]).lower()]
    return ", ".join(blas) or "unknown"


def reference_blas_dir():
    """Directory of Debian's reference (netlib) libblas.so.3 (package libblas3), if installed."""
    import glob

    hits = sorted(glob.glob("/usr/lib/*-linux-gnu/blas/libblas.so.3")) + sorted(glob.glob("/usr/lib/blas/libblas.so.3"))
    return os.path.dirname(hits[0]) if hits else None


# The tower's GEMMs: batch 1024 through 180 -> 200 -> 80, forward (A.B) and the two backward layouts
# (A^T.B for weight gradients, A.B^T for input gradients), as benchmarks/kernels-wasm.ts times them.
GEMM_LAYERS = [(1024, 180, 200), (1024, 200, 80)]


def gemm_cases():
    for batch, fin, fout in GEMM_LAYERS:
        yield f"{batch}x{fin} · {fin}x{fout}", batch, fout, fin, False, False
        yield f"({batch}x{fin})ᵀ · {batch}x{fout}", fin, fout, batch, True, False
        yield f"{batch}x{fout} · ({fin}x{fout})ᵀ", batch, fin, fout, False, True


def gemm_child(threads):
    """GFLOP/s of torch.mm (float32) at the tower shapes: median of 7 timed bursts after a warm-up."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = []
    for label, m, n, k, trans_a, trans_b in gemm_cases():
        a = torch.randn(k, m).t() if trans_a else torch.randn(m, k)
        b = torch.randn(n, k).t() if trans_b else torch.randn(k, n)
        out = torch.empty(m, n)
        for _ in range(30):
            torch.mm(a, b, out=out)
        burst = 50
        samples = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(burst):
                torch.mm(a, b, out=out)
            samples.append((time.perf_counter() - t0) / burst)
        samples.sort()
        rows.append({"label": label, "m": m, "n": n, "k": k, "transA": trans_a, "transB": trans_b,
                     "gflops": 2 * m * n * k / samples[len(samples) // 2] / 1e9})
    provider = sgemm_provider(loaded_libraries())
    info = {"sgemmProvider": provider, "openblas": openblas_info(provider), "libraries": loaded_libraries()}
    return {"threads": threads, "torch": torch.__version__, "blas": blas_summary(info), "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="sparse,dense")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1024,256")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--loss-steps", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "peer-torch.json"))
    ap.add_argument("--omp-wait", default="default,passive",
                    help="OpenMP wait policies to run with threads > 1: 'default' (libgomp spins, then sleeps) and/or 'passive'")
    ap.add_argument("--blas", default="system,reference",
                    help="'system': the libblas.so.3 the system resolves (OpenBLAS once installed); 'reference': also run "
                         "--reference-threads with Debian's reference libblas3 via LD_LIBRARY_PATH, when installed")
    ap.add_argument("--reference-threads", default="1")
    ap.add_argument("--keep-env", action="store_true", help="do not adjust OpenBLAS / malloc environment for the children")
    ap.add_argument("--quick", action="store_true", help="warmup 2, repeats 3, steps 5")
    ap.add_argument("--vocab", type=int, default=None,
                    help="rows per table for scaling runs (tables initialised in-process, ids remapped (id*7919) %% vocab)")
    ap.add_argument("--workload", default="mlp", choices=["mlp", "din", "deepfm"],
                    help="base model of both towers (benchmarks/peers/make-init.mjs holds their initial weights)")
    ap.add_argument("--profile", type=int, default=0, help="after timing, profile this many steps with torch.profiler")
    ap.add_argument("--gemm", action="store_true",
                    help="only time torch.mm at the tower's shapes (1 and 2 threads, --threads) and write them to --out")
    ap.add_argument("--gemm-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "THREADS", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.warmup, args.repeats, args.steps = 2, 3, 5
        args.loss_steps = min(args.loss_steps, args.warmup + args.repeats * args.steps)

    if args.gemm_child:
        print("@@RESULT@@" + json.dumps(gemm_child(args.gemm_child)))
        return 0
    if args.gemm:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        runs = []
        for t in [int(x) for x in args.threads.split(",") if x]:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--gemm-child", str(t)],
                                  env=child_env(t, args.keep_env), capture_output=True, text=True)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("@@RESULT@@")), None)
            if proc.returncode != 0 or line is None:
                print(f"torch gemm t={t}: FAILED rc={proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            runs.append(json.loads(line[len("@@RESULT@@"):]))
            for r in runs[-1]["rows"]:
                print(f"torch.mm t={t} {r['label']}: {r['gflops']:.1f} GFLOP/s")
        with open(args.out, "w") as f:
            json.dump({"framework": "pytorch", "runs": runs}, f, indent=2)
        return 0 if runs else 1

    if args.child:
        variant, threads, batch = args.child[0], int(args.child[1]), int(args.child[2])
        res = run_child(variant, threads, batch, args.warmup, args.repeats, args.steps, args.loss_steps, args.vocab,
                        args.workload, args.profile)
        print("@@RESULT@@" + json.dumps(res))
        return 0

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        meta = torch_meta()
    except ImportError as e:
        msg = f"torch peer skipped: PyTorch is not importable by {sys.executable} ({e}). On Debian: apt-get install -y python3-torch libopenblas0-pthread, then run with /usr/bin/python3."
        print(msg)
        with open(args.out, "w") as f:
            json.dump({"framework": "pytorch", "skipped": True, "reason": msg, "results": []}, f, indent=2)
        return 0
    ensure_init()

    results = []
    failures = []
    blas_modes = [b for b in args.blas.split(",") if b]
    ref_dir = reference_blas_dir() if "reference" in blas_modes else None
    skipped_modes = []
    if "reference" in blas_modes and not ref_dir:
        skipped_modes.append("reference BLAS runs skipped: no reference libblas.so.3 found (Debian: apt-get install libblas3)")
        print("torch: " + skipped_modes[-1])
    plan = []
    for batch in [int(x) for x in args.batches.split(",") if x]:
        for blas in [b for b in blas_modes if b == "system" or (b == "reference" and ref_dir)]:
            thread_list = args.threads if blas == "system" else args.reference_threads
            for variant in [v for v in args.variants.split(",") if v]:
                for t in [int(x) for x in thread_list.split(",") if x]:
                    for w in ([p for p in args.omp_wait.split(",") if p] if t > 1 else ["default"]):
                        plan.append((batch, blas, variant, t, w))
    for batch, blas, variant, threads, omp_wait in plan:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, str(threads), str(batch),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--steps", str(args.steps),
               "--loss-steps", str(args.loss_steps), "--workload", args.workload, "--profile", str(args.profile)]
        cmd += ["--vocab", str(args.vocab)] if args.vocab else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=child_env(threads, args.keep_env, None if omp_wait == "default" else omp_wait.upper(),
                                            ref_dir if blas == "reference" else None),
                              capture_output=True, text=True)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("@@RESULT@@")), None)
        if proc.returncode != 0 or line is None:
            failures.append({"variant": variant, "threads": threads, "ompWait": omp_wait, "blasMode": blas, "batch": batch, "rc": proc.returncode, "stderr": proc.stderr[-2000:]})
            print(f"torch {variant} t={threads} blas={blas} b={batch}: FAILED rc={proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        res = json.loads(line[len("@@RESULT@@"):])
        res["envAdjusted"] = not args.keep_env
        res["ompWaitPolicy"] = omp_wait
        res["blasMode"] = blas
        res["wallSec"] = time.perf_counter() - t0
        res["blas"] = blas_summary(res)
        results.append(res)
        print(f"torch {variant:6s} threads={threads}{'' if omp_wait == 'default' else ' (OMP ' + omp_wait + ')'} batch={batch:5d}: {res['samplesPerSec']:10.0f} samples/s, "
              f"peak RSS {res['peakRssMB']:.0f} MB, losses {res['losses'][0]:.4f} -> {res['losses'][-1]:.4f}  [{res['blas']}]", flush=True)

    out = {
        "framework": "pytorch",
        "skipped": False,
        **{k: v for k, v in meta.items()},
        "blas": next((r["blas"] for r in results if r["blasMode"] == "system"), None),
        "referenceBlas": next((r["blas"] for r in results if r["blasMode"] == "reference"), None),
        "skippedModes": skipped_modes,
        "envAdjusted": not args.keep_env,
        "settings": {"warmup": args.warmup, "repeats": args.repeats, "stepsPerRepeat": args.steps, "lossSteps": args.loss_steps},
        "note": "figures from a shared, possibly noisy machine; median of repeats",
        "results": results,
        "failures": failures,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")
    return 1 if failures and not results else 0


if __name__ == "__main__":
    sys.exit(main())
