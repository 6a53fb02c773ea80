//! Builds bpf/*.bpf.c with clang (Debian's clang and libbpf-dev; see
//! shared PLATFORM notes): `clang -O2 -g -target bpf`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let src =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("../../bpf");
    for prog in ["steer", "decap", "mark"] {
        let c = src.join(format!("{prog}.bpf.c"));
        println!("cargo:rerun-if-changed={}", c.display());
        let status = Command::new("clang")
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-I/usr/include/x86_64-linux-gnu",
                "-Wall",
                "-c",
            ])
            .arg(&c)
            .arg("-o")
            .arg(out.join(format!("{prog}.o")))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("clang failed on {} ({s})", c.display()),
            Err(e) => panic!(
                "cannot run clang ({e}): install it with `apt-get install clang libbpf-dev` (scripts/test does)"
            ),
        }
    }
}
