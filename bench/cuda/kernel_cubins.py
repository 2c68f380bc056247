# Compiles every kernel module (common.cuh prepended, as KernelSources does) with NVRTC, no GPU
# needed, and prints a hash of each module's cubin: a refactor of the kernel sources that must
# not change the machine code is checked by running this before and after. --define NAME=VALUE
# (repeatable) compiles a variant the way gpu-visit.sh's `variants` step does; --save DIR keeps
# the cubins (for cuobjdump / nvdisasm).
#
#   python3 bench/cuda/kernel_cubins.py [Sources/CUDA/Kernels] [--arch sm_90] [--define NAME=VALUE] [--save DIR]
import argparse
import ctypes
import glob
import hashlib
import os
import site

parser = argparse.ArgumentParser()
parser.add_argument("kernels", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Sources", "CUDA", "Kernels"))
parser.add_argument("--arch", default="sm_90")
parser.add_argument("--define", action="append", default=[])
parser.add_argument("--save")
args = parser.parse_args()

dirs = site.getsitepackages() + [site.getusersitepackages()]
libraries = [p for d in dirs for p in glob.glob(d + "/nvidia/*/lib/libnvrtc.so.1[23]")]
if not libraries:
    raise SystemExit("libnvrtc not found in site-packages: pip install nvidia-cuda-nvrtc")
for builtins in glob.glob(os.path.dirname(libraries[0]) + "/libnvrtc-builtins.so.*"):
    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
nvrtc = ctypes.CDLL(libraries[0])
common = open(os.path.join(args.kernels, "common.cuh")).read()
for path in sorted(glob.glob(os.path.join(args.kernels, "*.cu"))):
    name = os.path.basename(path)[:-3]
    source = common + f'\n#line 1 "{name}.cu"\n' + open(path).read()
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), (name + ".cu").encode(), 0, None, None) == 0
    options = [f"--gpu-architecture={args.arch}".encode(), b"--std=c++17", b"-default-device"]
    options += [f"-D{d}".encode() for d in args.define]
    size = ctypes.c_size_t()
    if nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options)) != 0:
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        raise SystemExit(f"{name}.cu does not compile:\n{log.value.decode()}")
    nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(program, cubin)
    print(f"{name:20} {args.arch} {hashlib.sha256(cubin.raw).hexdigest()[:16]}")
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        open(os.path.join(args.save, f"{name}.{args.arch}.cubin"), "wb").write(cubin.raw)
