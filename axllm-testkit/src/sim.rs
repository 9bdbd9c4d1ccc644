//! Finding the simulator library, and building it when it is missing; the
//! test binary's own path, and running it again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable naming the simulator library outright, which
/// [`sim_library`] then returns as it is (not built when missing). The arm64
/// lane (scripts/arm64.sh) sets it to the aarch64 build's library.
pub const SIM_LIB_ENV: &str = "AXLLM_TEST_SIM_LIB";

/// The environment variable naming the test binary when the process's own
/// executable is another program: a binary started through the dynamic
/// loader (`ld-linux-aarch64.so.1 --library-path ... BINARY`, as
/// scripts/qemu-aarch64-run does under qemu-user) has the loader as its
/// `/proc/self/exe`. Set by that script, with [`RUNNER_ENV`].
pub const EXE_ENV: &str = "AXLLM_TEST_EXE";

/// The environment variable naming the command that runs [`EXE_ENV`]'s
/// binary again (scripts/qemu-aarch64-run): the host kernel cannot start an
/// emulated binary by itself.
pub const RUNNER_ENV: &str = "AXLLM_TEST_RUNNER";

/// `target/<profile>/libaxcl_sim.so` for the profile this test binary was
/// built with (its directory is `target/<profile>/deps` or
/// `target/<profile>/examples`), built with cargo when missing; or the
/// library [`SIM_LIB_ENV`] names.
///
/// # Panics
/// When the library is missing and cannot be built.
pub fn sim_library() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(lib) = env_path(SIM_LIB_ENV) {
            return lib;
        }
        let exe = current_exe();
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
        ensure_built(profile_dir)
    })
    .clone()
}

/// The test binary's path: [`EXE_ENV`] when set, else
/// [`std::env::current_exe`].
///
/// # Panics
/// When the path cannot be found.
pub fn current_exe() -> PathBuf {
    env_path(EXE_ENV).unwrap_or_else(|| std::env::current_exe().expect("the test binary's path"))
}

/// A command that runs this test binary again (a test that needs a process of
/// its own, to watch it die): [`current_exe`], started by [`RUNNER_ENV`]'s
/// command when that is set.
pub fn self_command() -> Command {
    match (env_path(EXE_ENV), env_path(RUNNER_ENV)) {
        (Some(exe), Some(runner)) => {
            let mut cmd = Command::new(runner);
            cmd.arg(exe);
            cmd
        }
        _ => Command::new(current_exe()),
    }
}

/// The path a non-empty environment variable names.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v: &OsString| !v.is_empty()).map(PathBuf::from)
}

/// The simulator library in `target_dir` (release first, then debug), built
/// in release when neither exists: for crates outside the main workspace
/// (the fuzz targets) that share its target directory.
///
/// # Panics
/// When the library is missing and cannot be built.
pub fn sim_library_in(target_dir: &Path) -> PathBuf {
    for profile in ["release", "debug"] {
        let lib = target_dir.join(profile).join(LIB_NAME);
        if lib.exists() {
            return lib;
        }
    }
    ensure_built(&target_dir.join("release"))
}

const LIB_NAME: &str = "libaxcl_sim.so";

/// The library in `profile_dir`, built there first if it is missing.
fn ensure_built(profile_dir: &Path) -> PathBuf {
    let lib = profile_dir.join(LIB_NAME);
    if lib.exists() {
        return lib;
    }
    // Build into a target directory of our own (the outer cargo may hold the
    // lock on the main one), then move the library into place atomically, so
    // that no process ever loads a half-written file.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let target = workspace.join("target").join("testkit");
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace).args(["build", "-q", "-p", "axcl-sim", "--target-dir"]).arg(&target);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo to build the simulator");
    assert!(status.success(), "building the simulator failed: {status}");
    // A cross build (scripts/arm64.sh exports CARGO_BUILD_TARGET, which the
    // cargo above inherits) puts the library under the target's triple.
    let cross = std::env::var_os("CARGO_BUILD_TARGET").filter(|t| !t.is_empty());
    let built = cross
        .map_or(target.clone(), |triple| target.join(triple))
        .join(if release { "release" } else { "debug" })
        .join(LIB_NAME);
    let staging = profile_dir.join(format!(".{LIB_NAME}.{}", std::process::id()));
    std::fs::create_dir_all(profile_dir).expect("the profile directory");
    std::fs::copy(&built, &staging).expect("copying the simulator library");
    std::fs::rename(&staging, &lib).expect("moving the simulator library into place");
    lib
}
