//! Link settings of `sup-init`, the containers' init (see src/bin/sup-init.rs):
//! nothing for supd or supctl.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    // Its own entry point, which skips glibc's start-up (where it has one).
    if arch == "x86_64" || arch == "aarch64" {
        println!("cargo:rustc-link-arg-bin=sup-init=-Wl,--entry=sup_init_start");
        // Static (crt-static): a static-pie executable is relocated by glibc's
        // start-up, which no longer runs, so link it at fixed addresses. (-static
        // as well: -no-pie alone turns rustc's -static-pie into a dynamic link.)
        // A dynamic build is relocated by ld.so before the entry, as usual.
        if features.split(',').any(|f| f == "crt-static") {
            println!("cargo:rustc-link-arg-bin=sup-init=-static");
            println!("cargo:rustc-link-arg-bin=sup-init=-no-pie");
            // No read-only-after-relocation segment: in a static executable
            // glibc's start-up makes it read-only, so without that start-up it
            // protects nothing, and as a segment of its own its last page is one
            // more the kernel writes (zeroing past the file's bytes) in every init.
            println!("cargo:rustc-link-arg-bin=sup-init=-Wl,-z,norelro");
        }
    }
}
