//! The skeletons are compiled in (include_dir), which cargo cannot see on stable Rust: this makes a change
//! under plugin-kit/templates rebuild the binary.
fn main() {
    println!("cargo:rerun-if-changed=../plugin-kit/templates");
}
