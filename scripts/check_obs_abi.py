"""Checks the ctypes layer (obs_plugin/libobs.py) against one OBS major's own libobs headers.

    .venv/bin/python scripts/check_obs_abi.py [--headers DIR]     (default /usr/include/obs)

The filters reach libobs through hand-written ctypes declarations, which nothing checks when
OBS loads them: a field at the wrong offset or a parameter of the wrong width crashes OBS or,
worse, draws the raw frame.  This compiles (g++, nothing linked) a small program against the
headers that prints what the compiler knows: the offset, size and callback signature of every
`struct obs_source_info` field that `ObsSourceInfo` declares, the layout of
`struct obs_audio_data`, `struct vec2` and `struct vec4`, the value of every enum and flag
constant the plugin uses, and the signature of every function in the prototype table.  Types are
compared by how they are passed: `ptr`, `bool`, `i4` (signed, 4 bytes), `u8`, `f4`, ...; an
enum counts as `i4`.  Prints one line per mismatch and a summary; exits 1 on any mismatch.

Debian's libobs-dev carries the headers: this machine's OBS 29 in /usr/include/obs, OBS 30 and
32 in their root filesystems (scripts/run_obs.sh), where tests/test_obs_abi.py runs this.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path

from obs_plugin import libobs

CONSTANT_PREFIXES = ("OBS_", "GS_", "LOG_", "MAX_AV_")
"""Module constants of libobs.py that name a libobs enum value or macro (KNOWN_MAJORS does not)."""
STRUCTS = {"obs_audio_data": libobs.ObsAudioData, "vec2": libobs.Vec2}

CLASSIFY_CPP = r"""
#include <obs.h>
#include <obs-module.h>
#include <graphics/graphics.h>
#include <graphics/vec2.h>
#include <graphics/vec4.h>
#include <cstddef>
#include <cstdio>
#include <string>
#include <type_traits>

template <class T> std::string desc();
template <class F> struct sig;
template <class R, class... A> struct sig<R (*)(A...)> {
	static std::string str() {
		std::string s = desc<R>() + "(";
		((s += desc<A>() + ","), ...);
		if (s.back() == ',') s.pop_back();
		return s + ")";
	}
};
template <class R, class... A> struct sig<R (*)(A..., ...)> {
	static std::string str() {
		std::string s = sig<R (*)(A...)>::str();
		s.pop_back();
		return s + (sizeof...(A) ? ",...)" : "...)");
	}
};
template <class T> std::string desc() {
	using U = std::remove_cv_t<T>;
	if constexpr (std::is_void_v<U>) return "void";
	else if constexpr (std::is_array_v<U>)
		return desc<std::remove_extent_t<U>>() + "[" + std::to_string(std::extent_v<U>) + "]";
	else if constexpr (std::is_pointer_v<U> && std::is_function_v<std::remove_pointer_t<U>>)
		return sig<U>::str();
	else if constexpr (std::is_pointer_v<U>) return "ptr";
	else if constexpr (std::is_same_v<U, bool>) return "bool";
	else if constexpr (std::is_enum_v<U>) return "i" + std::to_string(sizeof(U));
	else if constexpr (std::is_floating_point_v<U>) return "f" + std::to_string(sizeof(U));
	else if constexpr (std::is_integral_v<U>)
		return (std::is_signed_v<U> ? "i" : "u") + std::to_string(sizeof(U));
	else return "struct" + std::to_string(sizeof(U));
}

#define FIELD(S, f) printf("field %s.%s %zu %zu %s\n", #S, #f, offsetof(struct S, f), \
	sizeof(((struct S *)0)->f), desc<decltype(((struct S *)0)->f)>().c_str())
#define SIZE(S) printf("size %s %zu %zu\n", #S, sizeof(struct S), alignof(struct S))
#define FUNC(f) printf("func %s %s\n", #f, sig<decltype(&f)>::str().c_str())
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main() {
	printf("version libobs %d.%d.%d\n", LIBOBS_API_MAJOR_VER, LIBOBS_API_MINOR_VER, LIBOBS_API_PATCH_VER);
@BODY@
	return 0;
}
"""


def ctype_desc(t) -> str:
    """The calling-convention class of a ctypes type, in the same words as CLASSIFY_CPP's desc()."""
    if t is None:
        return "void"
    if t in (ctypes.c_void_p, ctypes.c_char_p) or issubclass(t, ctypes._Pointer):
        return "ptr"
    if issubclass(t, ctypes._CFuncPtr):
        return f"{ctype_desc(t._restype_)}({','.join(ctype_desc(a) for a in t._argtypes_)})"
    if issubclass(t, ctypes.Array):
        return f"{ctype_desc(t._type_)}[{t._length_}]"
    if t is ctypes.c_bool:
        return "bool"
    if t in (ctypes.c_float, ctypes.c_double):
        return f"f{ctypes.sizeof(t)}"
    if issubclass(t, ctypes.Structure):
        return f"struct{ctypes.sizeof(t)}"
    return ("i" if t(-1).value < 0 else "u") + str(ctypes.sizeof(t))


def constants() -> dict[str, int]:
    return {name: value for name, value in vars(libobs).items()
            if name.startswith(CONSTANT_PREFIXES) and isinstance(value, int)}


def expected() -> dict[str, str]:
    """What libobs.py assumes, keyed like the compiled program's output lines."""
    want = {}
    for cname, struct in (("obs_source_info", libobs.ObsSourceInfo), *STRUCTS.items()):
        for name, ftype in struct._fields_:
            f = getattr(struct, name)
            want[f"field {cname}.{name}"] = f"{f.offset} {f.size} {ctype_desc(ftype)}"
        if cname != "obs_source_info":
            want[f"size {cname}"] = f"{ctypes.sizeof(struct)}"
    want["size vec4"] = "16 16"  # AlignedVec4 hands libobs 16 bytes at a 16-byte aligned address
    for name, (restype, argtypes) in libobs._PROTOTYPES.items():
        want[f"func {name}"] = f"{ctype_desc(restype)}({','.join(ctype_desc(a) for a in argtypes)})"
    for name, value in constants().items():
        want[f"const {name}"] = str(value)
    return want


def program() -> str:
    lines = [f"\tFIELD(obs_source_info, {name});" for name, _ in libobs.ObsSourceInfo._fields_]
    for cname, struct in STRUCTS.items():
        lines += [f"\tFIELD({cname}, {name});" for name, _ in struct._fields_] + [f"\tSIZE({cname});"]
    lines.append("\tSIZE(vec4);")
    lines += [f"\tFUNC({name});" for name in libobs._PROTOTYPES]
    lines += [f"\tCONST({name});" for name in constants()]
    return CLASSIFY_CPP.replace("@BODY@", "\n".join(lines))


def compiled_facts(headers: Path) -> dict[str, str]:
    """Compile and run the program against `headers`; its output as {key: value}."""
    with tempfile.TemporaryDirectory(prefix="obs-abi-") as tmp:
        src, exe = Path(tmp) / "abi.cpp", Path(tmp) / "abi"
        src.write_text(program())
        build = subprocess.run(["g++", "-std=c++17", "-w", "-I", str(headers), str(src), "-o", str(exe)],
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise RuntimeError(f"compiling against {headers} failed:\n{build.stderr[-4000:]}")
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    facts = {}
    for line in out.splitlines():
        kind, name, value = line.split(" ", 2)
        facts[f"{kind} {name}"] = value
    return facts


def compare(facts: dict[str, str]) -> list[str]:
    """Mismatches between the headers' facts and libobs.py, one line each."""
    problems = []
    for key, want in expected().items():
        got = facts.get(key)
        if key.startswith("size "):
            got = got if key == "size vec4" else got and got.split()[0]
        if key.startswith("func ") and got and got.endswith("...)"):
            # A variadic function (blog): ctypes passes the fixed parameters, then the extra ones.
            fixed = got[:-4].rstrip(",")
            ok = want.startswith(fixed) and want[len(fixed):][:1] in (",", ")")
            if ok:
                continue
        if key.startswith("field ") and want.endswith(" ptr") and got and got.startswith(want[:-3]) and "(" in got:
            continue  # a callback slot the filters leave NULL: only its offset and size matter
        if got != want:
            problems.append(f"{key}: headers say {got!r}, libobs.py says {want!r}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headers", type=Path, default=Path("/usr/include/obs"), metavar="DIR",
                        help="libobs' include folder, the one holding obs.h (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.headers / "obs.h").is_file():
        print(f"check_obs_abi: no obs.h in {args.headers} (install libobs-dev)", file=sys.stderr)
        return 2
    try:
        facts = compiled_facts(args.headers)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"check_obs_abi: {e}", file=sys.stderr)
        return 2
    problems = compare(facts)
    print(f"libobs headers {facts.get('version libobs')} in {args.headers}: "
          f"{len(expected())} facts checked ({len(libobs.ObsSourceInfo._fields_)} obs_source_info fields, "
          f"{len(libobs._PROTOTYPES)} functions, {len(constants())} constants), {len(problems)} mismatches")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
