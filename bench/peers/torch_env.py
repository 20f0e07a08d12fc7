# What the PyTorch peers share: which BLAS this process really loaded, how its threads and
# PyTorch's are set, and the CPU time a timed section used.
#
# Debian's torch is built with BLAS_INFO=generic: it calls whatever libblas.so.3 the dynamic
# loader finds (torch.__config__.show() only reports that build setting). That may be the
# reference BLAS or OpenBLAS, depending on the system's alternatives and LD_LIBRARY_PATH, so the
# library is identified here by the symbols it exports, not by its file name.
import ctypes, os, resource, time

import torch


def _loaded_blas_paths():
    """Real paths of the loaded libraries whose name says BLAS (libblas, libopenblas, libmkl, libblis)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:
        return []
    names = ("blas", "mkl", "blis")
    return sorted({os.path.realpath(p) for p in paths if any(n in os.path.basename(p).lower() for n in names)})


def _text(lib, fn):
    f = getattr(lib, fn)
    f.restype = ctypes.c_char_p
    return f().decode()


def blas_info():
    """{"path", "kind", "detail"} of the BLAS this process loaded, or None when none is found."""
    for path in _loaded_blas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "openblas_get_config"):
            parallel = {0: "sequential", 1: "pthreads", 2: "OpenMP"}.get(lib.openblas_get_parallel(), "?")
            # the core name shows the kernels chosen at run time (OPENBLAS_CORETYPE overrides it)
            detail = f"{_text(lib, 'openblas_get_config')}; core {_text(lib, 'openblas_get_corename')}; {parallel}"
            return {"path": path, "kind": "OpenBLAS", "detail": detail, "lib": lib}
        if hasattr(lib, "mkl_get_max_threads"):
            return {"path": path, "kind": "MKL", "detail": "", "lib": lib}
        if hasattr(lib, "bli_info_get_version_str"):
            return {"path": path, "kind": "BLIS", "detail": _text(lib, "bli_info_get_version_str"), "lib": lib}
        if hasattr(lib, "sgemm_"):
            # netlib's libblas exports the Fortran routines and nothing of its own
            return {"path": path, "kind": "reference", "detail": "no optimised-BLAS symbols: the netlib reference BLAS", "lib": lib}
    return None


def blas_report():
    """blas_info() without the library handle, for the JSON line."""
    info = blas_info()
    return None if info is None else {k: v for k, v in info.items() if k != "lib"}


def set_threads(n):
    """PyTorch's intra-op (OpenMP) threads and, for OpenBLAS, its own pthread pool, to n each.

    torch.set_num_threads does not reach a pthreads OpenBLAS. Both pools at n only work
    together on n cores because the launcher sets OMP_WAIT_POLICY=PASSIVE (bench/harness.ts):
    with libgomp's default, idle OpenMP threads spin after each parallel region and take the
    cores OpenBLAS's threads need.
    """
    torch.set_num_threads(n)
    info = blas_info()
    if info and info["kind"] == "OpenBLAS":
        info["lib"].openblas_set_num_threads(n)


class CpuTimer:
    """User and system CPU seconds of this process (all its threads) over a with-block, and wall seconds."""

    def __enter__(self):
        self._r0, self._w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        return self

    def __exit__(self, *exc):
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.result = {"user_s": r1.ru_utime - self._r0.ru_utime, "sys_s": r1.ru_stime - self._r0.ru_stime,
                       "wall_s": time.perf_counter() - self._w0}
        return False


def wait_policy():
    """The OpenMP wait policy this process started with (libgomp reads it once, at load)."""
    return os.environ.get("OMP_WAIT_POLICY", "default (spin, then sleep)")
