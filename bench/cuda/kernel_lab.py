# Loads HiFC's CUDA kernels (Sources/CUDA/Kernels, common.cuh prepended, as KernelLibrary does)
# with NVRTC and the driver API through ctypes, and launches them on PyTorch tensors: a quick
# loop for checking a kernel against a torch reference and timing it beside torch on the GPU
# machine, without a Swift build. The Swift binary (`hifc check gpu`) stays the real check.
#
#   from kernel_lab import Lab
#   lab = Lab()                       # compiles every module for the current GPU
#   lab.launch("rope_f32", grid, block, [x, 128, pos, inv, 128])   # tensors, ints, floats
import ctypes
import glob
import math
import os
import shutil
import tempfile
import time

import torch

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Sources", "CUDA", "Kernels")


def with_variants(kernels, module, variants, also=()):
    """A temporary copy of `kernels` holding common.cuh and `module`.cu with the lab-only kernels of
    the file `variants` appended, and the modules named in `also` as they are, for
    `Lab(kernels_dir=..., modules=[module, *also])`."""
    d = tempfile.mkdtemp()
    for f in ("common.cuh",) + tuple(m + ".cu" for m in also):
        shutil.copy(os.path.join(kernels, f), d)
    with open(os.path.join(d, module + ".cu"), "w") as f:
        f.write(open(os.path.join(kernels, module + ".cu")).read() + "\n" + open(variants).read())
    return d


def pool_tensor_map(lab, data_ptr, hd, kvh, bt, layers, blocks, block_bytes, box_tokens):
    """The tensor map of a block-major bf16 pool at `data_ptr` for the Hopper attention kernels' bulk
    copies, as CUDAKernels.prefillKVMap makes it: [block][layer * 2 + K|V][token][KV head][dim]
    (blocks `block_bytes` apart) in boxes of `box_tokens` x 64 dims, 128-byte swizzle, zeros out of
    bounds; 128 bytes in device memory."""
    row = hd * 2
    dims = (ctypes.c_uint64 * 5)(hd, kvh, bt, 2 * layers, blocks)
    strides = (ctypes.c_uint64 * 4)(row, kvh * row, bt * kvh * row, block_bytes)
    box = (ctypes.c_uint32 * 5)(64, 1, box_tokens, 1, 1)
    ones = (ctypes.c_uint32 * 5)(1, 1, 1, 1, 1)
    host = (ctypes.c_uint8 * 128)()
    # bf16 = 9, interleave none, 128-byte swizzle = 3, L2 promotion 256 bytes = 3, zero fill.
    lab._check(lab.cuda.cuTensorMapEncodeTiled(host, 9, 5, ctypes.c_void_p(data_ptr), dims, strides, box, ones, 0, 3, 3, 0),
               "cuTensorMapEncodeTiled")
    return torch.tensor(bytearray(host), dtype=torch.uint8).cuda()


def _load(name, dirs):
    for d in dirs:
        for p in sorted(glob.glob(os.path.join(d, name))):
            return ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL)
    raise OSError(f"{name} not found in {dirs}")


class Lab:
    def __init__(self, kernels_dir=KERNELS, modules=None, arch=None):
        """arch: the NVRTC target; by default the GPU's, as hifc picks it (CUDADeviceInfo.architecture:
        sm_90a on Hopper, whose wgmma kernels need it)."""
        self.kernels_dir = kernels_dir
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # makes the primary context current on this thread
        dirs = [os.environ.get("CUDA_HOME", "/usr/local/cuda") + "/lib64", "/usr/local/cuda/lib64"]
        self.cuda = ctypes.CDLL("libcuda.so.1")
        try:
            _load("libnvrtc-builtins.so.1*", dirs)
        except OSError:
            pass
        self.nvrtc = _load("libnvrtc.so.1[23]*", dirs)
        major, minor = torch.cuda.get_device_capability()
        self.arch = arch or f"sm_{major}{minor}" + ("a" if (major, minor) == (9, 0) else "")
        common = open(os.path.join(kernels_dir, "common.cuh")).read()
        self.functions = {}
        self._modules = []
        files = sorted(glob.glob(os.path.join(kernels_dir, "*.cu")))
        for f in files:
            name = os.path.basename(f)[:-3]
            if modules and name not in modules:
                continue
            src = common + f'\n#line 1 "{name}.cu"\n' + open(f).read()
            self._add_module(name, src)

    def _check(self, rc, what):
        if rc != 0:
            s = ctypes.c_char_p()
            self.cuda.cuGetErrorString(rc, ctypes.byref(s))
            raise RuntimeError(f"{what}: CUDA error {rc} {s.value}")

    def _add_module(self, name, src):
        prog = ctypes.c_void_p()
        assert self.nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), (name + ".cu").encode(), 0, None, None) == 0
        opts = [f"--gpu-architecture={self.arch}".encode(), b"--std=c++17", b"-default-device"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = self.nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t()
        self.nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value)
        self.nvrtc.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            raise RuntimeError(f"{name}.cu does not compile:\n{log.value.decode()}")
        self.nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(n))
        image = ctypes.create_string_buffer(n.value)
        self.nvrtc.nvrtcGetCUBIN(prog, image)
        module = ctypes.c_void_p()
        self._check(self.cuda.cuModuleLoadData(ctypes.byref(module), image), f"cuModuleLoadData({name})")
        self._modules.append(module)
        import re
        # A kernel's name after its launch bounds and cluster dims (or attention.cu's CLUSTER_OF_2), if
        # any; the blocks of its cluster.
        decl = r'extern\s+"C"\s+__global__\s+void\s+((?:(?:__launch_bounds__|__cluster_dims__)\([^)]*\)\s+|CLUSTER_OF_\d+\s+)*)(\w+)'
        for m in re.finditer(decl, src):
            k = m.group(2)
            fn = ctypes.c_void_p()
            self._check(self.cuda.cuModuleGetFunction(ctypes.byref(fn), module, k.encode()), f"cuModuleGetFunction({k})")
            self.functions[k] = fn
            dims = re.search(r"__cluster_dims__\(([^)]*)\)", m.group(1))
            if dims and math.prod(int(x) for x in dims.group(1).split(",")) > 8:
                # CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14: clusters past the portable 8 blocks.
                self._check(self.cuda.cuFuncSetAttribute(fn, 14, 1), f"cuFuncSetAttribute({k}, non-portable cluster)")

    def resident_blocks(self, kernel, threads, shared=0):
        """How many blocks of `kernel` fit on one multiprocessor, from the driver (as
        CUDAFunction.residentBlocksPerMultiprocessor asks it, shared memory opted in first)."""
        fn = self.functions[kernel]
        if shared > 0:
            self._check(self.cuda.cuFuncSetAttribute(fn, 8, shared), f"cuFuncSetAttribute({kernel})")
        n = ctypes.c_int()
        self._check(self.cuda.cuOccupancyMaxActiveBlocksPerMultiprocessor(ctypes.byref(n), fn, threads, ctypes.c_size_t(shared)),
                    f"cuOccupancyMaxActiveBlocksPerMultiprocessor({kernel})")
        return n.value

    def launch(self, kernel, grid, block, args, shared=0, stream=None, pdl=False):
        """args: torch tensors (passed as device pointers), ints (C int), floats (C float),
        or ctypes values (passed as they are, e.g. ctypes.c_long for a C long). pdl: launched
        as hifc launches every kernel (CUDAFunction.swift), with programmatic stream serialization,
        so it may start once the kernel before it lets it in (griddepcontrol.launch_dependents)."""
        holders = []
        for a in args:
            if isinstance(a, torch.Tensor):
                assert a.is_cuda
                holders.append(ctypes.c_uint64(a.data_ptr()))
            elif isinstance(a, bool):
                raise TypeError("pass bools as ints")
            elif isinstance(a, int):
                holders.append(ctypes.c_int(a))
            elif isinstance(a, float):
                holders.append(ctypes.c_float(a))
            else:
                holders.append(a)
        params = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        g = tuple(grid) + (1,) * (3 - len(grid))
        b = tuple(block) + (1,) * (3 - len(block))
        s = stream if stream is not None else torch.cuda.current_stream().cuda_stream
        fn = self.functions[kernel]
        if shared > 0:  # the static shared memory counts against the 48 KiB default too
            # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
            self._check(self.cuda.cuFuncSetAttribute(fn, 8, shared), f"cuFuncSetAttribute({kernel})")
        if not pdl:
            self._check(self.cuda.cuLaunchKernel(fn, *g, *b, shared, ctypes.c_void_p(s), params, None), f"launch {kernel}")
            return
        # CUlaunchAttribute: a 32-bit id padded to 8, a 64-byte value; id 6 is
        # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, value 1 allows it.
        attribute = (ctypes.c_uint8 * 72)()
        ctypes.c_int32.from_buffer(attribute, 0).value = 6
        ctypes.c_int32.from_buffer(attribute, 8).value = 1
        # CUlaunchConfig: grid and block sizes, shared bytes, the stream at 32, attributes at 40, their count at 48.
        config = (ctypes.c_uint8 * 56)()
        for i, v in enumerate(g + b + (shared,)):
            ctypes.c_uint32.from_buffer(config, 4 * i).value = v
        ctypes.c_uint64.from_buffer(config, 32).value = s
        ctypes.c_uint64.from_buffer(config, 40).value = ctypes.addressof(attribute)
        ctypes.c_uint32.from_buffer(config, 48).value = 1
        self._check(self.cuda.cuLaunchKernelEx(ctypes.byref(config), fn, params, None), f"launch {kernel} (PDL)")

    def global_array(self, name, ctype, count):
        """The first `count` elements of the __device__ array `name` (of C type `ctype`) of the module
        that defines it, copied to the host after the work queued so far."""
        torch.cuda.synchronize()
        for module in self._modules:
            address, size = ctypes.c_uint64(), ctypes.c_size_t()
            if self.cuda.cuModuleGetGlobal_v2(ctypes.byref(address), ctypes.byref(size), module, name.encode()) == 0:
                out = (ctype * count)()
                self._check(self.cuda.cuMemcpyDtoH_v2(out, address, ctypes.c_size_t(ctypes.sizeof(out))), f"copy of {name}")
                return list(out)
        raise KeyError(f"no module defines {name}")


def add_norm_launch(rows, dim):
    """(kernel, threads) of the add + RMSNorm hifc launches for `rows` decode rows of `dim`:
    CUDAKernels.normKernel's one-row twin that lets the next kernel in first at one row, and
    CUDAKernels.normBlock's block (keep the two in step)."""
    return "add_rmsnorm_f32_to_bf16" + ("_next_first" if rows == 1 else ""), min(1024, ((dim // 4 + 3) // 4 + 31) // 32 * 32)


def median_ms(fn, iters=20, warmup=3):
    """Median milliseconds of fn() over iters runs, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth_gbs():
    """Device-to-device copy of 1 GiB, bytes read plus written per second (GB/s): the roofline."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a))
    return 2 * a.numel() / ms / 1e6


def rel_err(x, ref):
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm()).item()


def settle(fn, seconds=1.0):
    """Runs fn() for about `seconds` before a shape's timings: after a power-hungry phase (writing
    a pool of many GB) the GPU holds its SM clock down for a while (model-h200.md), and the first
    timing taken after it ran 5-15% slow where the same launches timed later did not (fp8-kv.md,
    2026-12-05)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()
        torch.cuda.synchronize()


def graph_ms(fn, reps=20, iters=10):
    """Median GPU milliseconds of one fn() call, with `reps` calls captured in a CUDA graph so
    that Python's launch overhead is not timed (kernels launched through Lab.launch use the
    current stream, which is the capture stream inside the graph)."""
    fn()  # compile/warm outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    return median_ms(g.replay, iters=iters) / reps
