//! The exporter's entry point, built here so the integration tests can start it as a process.

fn main() -> std::process::ExitCode {
    collector_exporter::run()
}
