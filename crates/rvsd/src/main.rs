//! `rvsd --config FILE --interface IFACE --socket PATH --metrics ADDR [--check]`

fn main() {
    std::process::exit(rvsd::cli::main(std::env::args()));
}
