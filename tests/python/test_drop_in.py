"""The simulator as a drop-in libaxcl_rt.so: it carries the vendor SONAME, and
AXERA's Python runtime finds it the way it finds the real library,
`ctypes.util.find_library("axcl_rt")` with its directory on LD_LIBRARY_PATH,
then calls the functions it calls on every session."""

import os
import subprocess
import sys
import textwrap


PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    name = ctypes.util.find_library("axcl_rt")
    print("found", name)
    lib = ctypes.CDLL(name)
    lib.axclrtGetSocName.restype = ctypes.c_char_p
    print("soc", lib.axclrtGetSocName().decode())
    # pyaxengine passes an empty config buffer to axclInit.
    assert lib.axclInit(ctypes.create_string_buffer(0)) == 0
    lst = (ctypes.c_int32 * 257)()
    assert lib.axclrtGetDeviceList(ctypes.byref(lst)) == 0
    dev = lst[1]
    print("device", dev)
    assert lib.axclrtSetDevice(dev) == 0
    ctx = ctypes.c_void_p()
    assert lib.axclrtGetDefaultContext(ctypes.byref(ctx), dev) == 0 and ctx.value
    assert lib.axclrtEngineInit(0) == 0
    kind = ctypes.c_int32(-1)
    assert lib.axclrtEngineGetVNpuKind(ctypes.byref(kind)) == 0
    print("vnpu", kind.value)
    major, minor, patch = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
    assert lib.axclrtGetVersion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch)) == 0
    print("version", major.value, minor.value, patch.value)
    host = ctypes.c_void_p()
    assert lib.axclrtMallocHost(ctypes.byref(host), ctypes.c_size_t(256)) == 0 and host.value
    assert lib.axclrtFreeHost(host) == 0
    assert lib.axclrtFreeHost(host) != 0, "a double free is refused"
    assert lib.axclrtEngineFinalize() == 0
    assert lib.axclrtResetDevice(dev) == 0
    assert lib.axclFinalize() == 0
    print("ok")
""")


def test_find_library_finds_the_simulator_under_the_vendor_name(tools, tmp_path):
    sim = tools["sim"]
    out = subprocess.run(["readelf", "-d", str(sim)], capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libaxcl_rt.so]" in out, out
    (tmp_path / "libaxcl_rt.so").symlink_to(sim)
    env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path)}
    env.pop("AXCL_SIM_CONFIG", None)
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines == ["found libaxcl_rt.so", "soc AX650N", "device 129", "vnpu 0", "version 3 10 2", "ok"], lines


def test_without_the_directory_it_is_not_found(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    res = subprocess.run([sys.executable, "-c", "import ctypes.util; print(ctypes.util.find_library('axcl_rt'))"],
                         capture_output=True, text=True, env=env, check=True)
    # Only a machine with AXERA's runtime installed finds one.
    if not os.path.exists("/usr/lib/axcl/libaxcl_rt.so"):
        assert res.stdout.strip() == "None", res.stdout
