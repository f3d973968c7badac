//! The binary: everything is in the library so tests run the same entry point.

fn main() -> std::process::ExitCode {
    collector_exporter::run()
}
