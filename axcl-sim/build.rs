//! The simulator library carries the vendor runtime's SONAME, `libaxcl_rt.so`,
//! so that a copy or symlink under that name is found by the dynamic loader's
//! and Python's `ctypes.util.find_library("axcl_rt")` searches like the real
//! library (hardware-facts: F19).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libaxcl_rt.so");
}
