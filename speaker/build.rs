//! Link flags of the `ferrolb-speaker` binary.

fn main() {
    // Packed relative relocations (DT_RELR, glibc >= 2.36, binutils >= 2.38): the
    // position-independent binary's ~17,000 relocations shrink from a 400 KB table, which
    // the dynamic loader reads whole at every start (resident on every node), to a few KB.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
